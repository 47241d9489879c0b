"""Machine metadata (pyperf-style): what a run's numbers were measured on.

One function, :func:`machine_metadata`, gives the one block every summary and profile carries
under ``"machine"``: CPU model, usable cores, memory, kernel, Python and torch versions, thread
settings, load average and the date.  Torch is not imported for it: its version comes from the
installed package, and its default thread counts are read only where torch is already loaded
(or ``import_torch`` asks for it, as calibration does), ``None`` otherwise.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

import psutil

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (NaN where the OS has none)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return [round(x, 2) for x in load]


def torch_version() -> str | None:
    """torch's ``__version__`` (with its local part, e.g. ``+cpu``) without importing torch."""
    try:
        dist = importlib.metadata.distribution("torch")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - torch is a dependency
        return None
    try:
        text = Path(str(dist.locate_file("torch/version.py"))).read_text()
        found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.M)
    except OSError:
        found = None
    return found.group(1) if found else dist.version


def _torch(import_torch: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"torch": torch_version(), "torch_threads_default": None,
                           "torch_interop_threads_default": None}
    if out["torch"] is None:
        return out
    if "torch" in sys.modules or import_torch:
        import torch

        out["torch"] = torch.__version__
        out["torch_threads_default"] = torch.get_num_threads()
        out["torch_interop_threads_default"] = torch.get_num_interop_threads()
    return out


def machine_metadata(import_torch: bool = False) -> dict[str, Any]:
    """CPU model, cores, memory, kernel, Python/torch versions, thread settings, load, date."""
    return {
        "cpu_model": cpu_model(),
        "cores": usable_cores(),
        "logical_cpus": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "kernel": platform.release(),
        "os": platform.system(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "hostname": platform.node(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "loadavg": load_average(),
        "switch_interval_s": sys.getswitchinterval(),
        "env_threads": {k: os.environ[k] for k in THREAD_ENV if k in os.environ},
        **_torch(import_torch),
    }


def machine_key(meta: dict[str, Any]) -> str:
    """A short key identifying the machine a profile belongs to (for caching per machine)."""
    import hashlib

    ident = f"{meta['cpu_model']}|{meta['cores']}|{meta['memory_bytes']}|{meta['hostname']}"
    ident += f"|{meta.get('torch')}|{meta['python']}"
    return hashlib.sha1(ident.encode()).hexdigest()[:12]
