"""A benchmark of ``time.sleep`` (timer resolution and scheduler wake-up latency)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any


def measure(params: Mapping[str, Any], warmups: int, samples: int) -> dict[str, Any]:
    seconds = float(params.get("seconds", 0.001))
    out = []
    for i in range(warmups + samples):
        t = time.perf_counter()
        time.sleep(seconds)
        if i >= warmups:
            out.append(time.perf_counter() - t)
    return {"samples": out}
