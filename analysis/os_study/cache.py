"""Section 6's cache row: hardware counters where the machine has them, and a timing sweep
that shows the cache hierarchy either way.

* ``perf``: ``perf stat`` on a short ping-pong (as :mod:`servelab.calibrate.benches.perfstat`
  runs it) for hardware events (cycles, instructions, cache misses, LLC loads) and software
  ones (context switches, CPU migrations, page faults); one row per event with whether the
  kernel counted it, plus ``/proc/sys/kernel/perf_event_paranoid``.  On a VM whose hypervisor
  hides the PMU the hardware events read ``<not supported>``: the study says so and invents
  nothing.
* ``cache``: random reads (NumPy gather of a shuffled index, 2^20 reads) over arrays from
  16 KiB to 64 MiB (256 MiB in the full run): the time per read (``s_per_read``, seconds;
  printed in ns) steps up as the working set leaves L1/L2, then the last-level cache, for
  memory.  Repeated; one row per repeat.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HW = ("cycles", "instructions", "cache-misses", "cache-references", "LLC-load-misses")
SW = ("context-switches", "cpu-migrations", "page-faults")


def paranoid() -> str:
    try:
        return Path("/proc/sys/kernel/perf_event_paranoid").read_text().strip()
    except OSError:
        return "unreadable"


def measure_perf(quick: bool = True, variant: str = "full", **over: Any) -> pd.DataFrame:
    perf = shutil.which("perf")
    base = {"paranoid": paranoid(), "perf": perf or ""}
    if perf is None:
        return pd.DataFrame([{**base, "event": e, "kind": "hw" if e in HW else "sw",
                              "supported": False, "value": np.nan,
                              "reason": "perf not installed"} for e in (*HW, *SW)])
    cmd = [perf, "stat", "-x", ",", "-e", ",".join((*HW, *SW)), "--", sys.executable, "-c",
           "from servelab.calibrate.benches.ctxswitch import _one; _one('thread', 2000)"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    got: dict[str, tuple[bool, float, str]] = {}
    for line in proc.stderr.splitlines():
        parts = line.split(",")
        if len(parts) >= 3 and parts[2] in (*HW, *SW):
            try:
                got[parts[2]] = (True, float(parts[0]), "")
            except ValueError:
                got[parts[2]] = (False, np.nan, parts[0])
    reason = "" if proc.returncode == 0 else (proc.stderr.strip().splitlines() or [""])[-1]
    rows = []
    for e in (*HW, *SW):
        ok, value, why = got.get(e, (False, np.nan, reason or "not reported"))
        rows.append({**base, "event": e, "kind": "hw" if e in HW else "sw", "supported": ok,
                     "value": value, "reason": why})
    return pd.DataFrame(rows)


def _s_per_read(nbytes: int, reads: int, rng: np.random.Generator) -> float:
    a = np.ones(nbytes // 8, dtype=np.int64)
    idx = rng.integers(0, a.size, reads)
    a[idx].sum()  # warm: the pages are touched, the index is built
    best = np.inf
    for _ in range(3):  # the least-interrupted of three
        t = time.perf_counter()
        a[idx].sum()
        best = min(best, time.perf_counter() - t)
    return float(best / reads)


def measure_cache(quick: bool = True, variant: str = "full", **over: Any) -> pd.DataFrame:
    top = int(over.get("max_bytes", (64 << 20) if quick else (256 << 20)))
    sizes = [16 << 10]
    while sizes[-1] < top:
        sizes.append(sizes[-1] * 4)
    reads = int(over.get("reads", 1 << 20))
    repeats = int(over.get("repeats", 3 if quick else 5))
    rng = np.random.default_rng(0)
    rows = [{"bytes": s, "repeat": r, "s_per_read": _s_per_read(s, reads, rng)}
            for r in range(repeats) for s in sizes]
    return pd.DataFrame(rows)
