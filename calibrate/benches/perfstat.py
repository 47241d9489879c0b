"""Hardware and scheduler counters from ``perf stat`` around a ping-pong workload.

Where ``perf`` is missing or not permitted (common in containers), the result says so —
``available: false`` with the reason — and no number is invented.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

EVENTS = ("context-switches", "cpu-migrations", "cache-misses", "instructions", "cycles")


def measure(params: Mapping[str, Any], warmups: int, samples: int) -> dict[str, Any]:
    kind = params.get("kind", "thread")
    perf = shutil.which("perf")
    if perf is None:
        return {"samples": [], "available": False, "reason": "perf not installed"}
    cmd = [
        perf, "stat", "-x", ",", "-e", ",".join(EVENTS), "--", sys.executable, "-c",
        "from servelab.calibrate.benches.ctxswitch import _one; "
        f"_one({kind!r}, {int(params.get('rounds', 2000))})",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    counters: dict[str, float | None] = {}
    for line in proc.stderr.splitlines():
        parts = line.split(",")
        if len(parts) >= 3 and parts[2] in EVENTS:
            try:
                counters[parts[2]] = float(parts[0])
            except ValueError:  # "<not supported>" / "<not counted>"
                counters[parts[2]] = None
    if proc.returncode != 0 or not any(v is not None for v in counters.values()):
        reason = (proc.stderr.strip().splitlines() or ["no counters"])[-1][:300]
        return {"samples": [], "available": False, "reason": reason, "counters": counters}
    return {"samples": [], "available": True, "counters": counters, "kind": kind}
