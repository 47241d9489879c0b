"""Section 6's CPU-affinity row, live: pinning two worker processes with
``os.sched_setaffinity``.

A processes server (two workers) serves MobileNetV2 under a fixed Poisson load; between runs
the study sets the CPU affinity of every thread of both worker processes
(``/proc/<pid>/task/*``):

* ``unpinned`` — any core (the default; the scheduler may move a worker between cores);
* ``spread`` — worker *i* on core *i* (each keeps its core and its caches);
* ``same-core`` — both workers on core 0 (the contrast: one core for two workers).

The front end, the zygote and the load generator stay unpinned.  Conditions are interleaved
over the repeats so that drift in the machine's speed hits each alike.  Per run: throughput,
p50 / p99 latency, and the workers' involuntary switches per request.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from servelab.analysis.os_study import live, procfs

CONDITIONS = ("unpinned", "spread", "same-core")


def pin(pid: int, cores: set[int]) -> None:
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cores)
        except OSError:
            continue  # a thread that just exited


def plan(quick: bool, variant: str) -> dict[str, Any]:
    return {"rate": 60.0 if variant == "full" else 80.0, "seconds": 3.0 if quick else 10.0,
            "repeats": 2 if quick else 3, "model": "mobilenet_v2"}


def measure(quick: bool = True, variant: str = "full", **over: Any) -> pd.DataFrame:
    p = {**plan(quick, variant), **over}
    cores = sorted(os.sched_getaffinity(0))
    rows = []
    model = p["model"]
    with live.server("processes", variant, (model,)) as srv:
        workers = live.server_pids(srv)["workers"]
        live.drive(srv.url, live.workload({model: 1.0}, p["rate"], 1.0, 99), variant)
        for rep in range(p["repeats"]):
            for cond in tuple(p.get("conditions", CONDITIONS)):
                for i, w in enumerate(workers):
                    pin(w, {cores[i % len(cores)]} if cond == "spread" else
                        {cores[0]} if cond == "same-core" else set(cores))
                before = procfs.total(workers)
                rec = live.drive(srv.url, live.workload({model: 1.0}, p["rate"], p["seconds"],
                                                        seed=rep), variant)
                d = procfs.total(workers) - before
                lat = live.ok_latencies(rec).to_numpy(float)
                ok = len(lat)
                end = rec.loc[rec["status"] == "ok", "end"]
                rows.append({
                    "condition": cond, "repeat": rep, "rate": p["rate"], "ok": ok,
                    "requests": len(rec), "cores": len(cores),
                    "throughput": ok / max(float(end.max()) if ok else p["seconds"], 1e-9),
                    "p50_s": float(np.median(lat)) if ok else np.nan,
                    "p99_s": float(np.percentile(lat, 99)) if ok else np.nan,
                    "ivcsw_per_req": d.involuntary / max(ok, 1),
                    "worker_cpu_s_per_req": d.cpu_s / max(ok, 1),
                })
        for w in workers:
            pin(w, set(cores))
    return pd.DataFrame(rows)
