"""Machine metadata recorded with every profile (pyperf-style): what the numbers were measured on."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import psutil


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


def machine_metadata() -> dict[str, Any]:
    """CPU model, cores, memory, kernel, Python/torch versions, thread settings, date."""
    meta: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cores": usable_cores(),
        "logical_cpus": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "kernel": platform.release(),
        "os": platform.system(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "hostname": platform.node(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "env_threads": {
            k: os.environ[k]
            for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
            if k in os.environ
        },
    }
    try:
        import torch

        meta["torch"] = torch.__version__
        meta["torch_threads_default"] = torch.get_num_threads()
        meta["torch_interop_threads_default"] = torch.get_num_interop_threads()
    except ImportError:  # pragma: no cover - torch is a dependency
        meta["torch"] = None
    return meta


def machine_key(meta: dict[str, Any]) -> str:
    """A short key identifying the machine a profile belongs to (for caching per machine)."""
    import hashlib

    ident = f"{meta['cpu_model']}|{meta['cores']}|{meta['memory_bytes']}|{meta['hostname']}"
    ident += f"|{meta.get('torch')}|{meta['python']}"
    return hashlib.sha1(ident.encode()).hexdigest()[:12]
