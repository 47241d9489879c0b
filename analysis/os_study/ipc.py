"""IPC cost vs payload size: pipe, multiprocessing.Queue, shared memory (section 2 and the
"IPC vs shared memory" row of section 6).

Reuses the calibration's benchmark (:mod:`servelab.calibrate.benches.ipc`): one-way time of a
payload to a forked echo process, half a round trip with a small acknowledgement; ``shm``
writes the payload into a shared block and sends only its name (the reader copies it out, as a
worker that owns its input must).  One row per sample.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

METHODS = ("pipe", "queue", "shm")


def plan(quick: bool, variant: str) -> dict[str, Any]:
    sizes = (64, 4096, 65536, 1 << 20, 8 << 20) if quick else \
        (64, 1024, 4096, 16384, 65536, 262144, 1 << 20, 4 << 20, 16 << 20)
    return {"sizes": sizes, "samples": 30 if quick else 100, "warmups": 3}


def measure(quick: bool = True, variant: str = "full", **over: Any) -> pd.DataFrame:
    from servelab.calibrate.benches.ipc import measure as bench

    p = {**plan(quick, variant), **over}
    rows = []
    for size in p["sizes"]:
        n = p["samples"] if size <= 1 << 20 else max(5, p["samples"] // 3)
        for method in METHODS:
            res = bench({"method": method, "bytes": size}, p["warmups"], n)
            rows += [{"method": method, "bytes": size, "sample": i, "one_way_s": s}
                     for i, s in enumerate(res["samples"])]
    return pd.DataFrame(rows)


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Per method and payload: the one-way time's median and quartiles (seconds) and the
    median's bandwidth."""
    g = df.groupby(["method", "bytes"])["one_way_s"]
    out = pd.DataFrame({"median_s": g.median(), "p25_s": g.quantile(0.25),
                        "p75_s": g.quantile(0.75)}).reset_index()
    out["gb_per_s"] = out["bytes"] / out["median_s"] / 1e9
    return out


def crossover(df: pd.DataFrame) -> int | None:
    """The smallest payload from which shared memory beats the pipe (median), or None."""
    s = summarize(df).pivot(index="bytes", columns="method", values="median_s")
    faster = s.index[s["shm"] < s["pipe"]]
    return int(faster.min()) if len(faster) else None
