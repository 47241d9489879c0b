"""Section 2, live: context switches and CPU time per request under each concurrency model.

Each setup (threads, processes, async with inline / thread / process offload; two workers)
serves one model under the same fixed open-loop Poisson load from servelab's generator.  Before
and after each run the study reads ``/proc`` for the server process and every worker process
(and the zygote) — all their threads — and divides by the requests answered:

* voluntary switches (a thread blocked: socket read, queue wait, lock, IPC) and involuntary
  ones (the scheduler preempted it: more runnable threads than cores), per request;
* CPU per request (user, system; and the exact schedstat sum) against the wall time a client
  saw per request (mean latency from the intended send time): ``cpu/wall`` is how many cores a
  request kept busy on average while it was in flight;
* from the server's own trace, where that wall time went inside the server: queueing, compute,
  and for process workers the IPC round trip (pickle + socket pair + shared-memory arena,
  ``ipc_s``: the batch's round trip minus the worker's compute).

Limits: the load generator runs on the same two cores (its own switches are not counted, its
CPU competes); the counts include the server's idle housekeeping (the CPU sampler's 100 ms
tick, the deadline reaper), a per-second floor spread over the run's requests.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from servelab.analysis.os_study import live, procfs

SETUPS = ("threads", "processes", "async-inline", "async-thread", "async-process")


def plan(quick: bool, variant: str) -> dict[str, Any]:
    model = "mobilenet_v2" if variant == "full" else "noop"
    return {"setups": SETUPS, "model": model, "rate": 20.0, "seconds": 3.0 if quick else 10.0,
            "repeats": 2 if quick else 3, "warm_s": 1.0}


def _trace(srv: Any) -> list[dict[str, Any]]:
    """The server's per-request records: over HTTP for a subprocess, directly in process."""
    return srv.get("/servelab/trace") if hasattr(srv, "get") else srv.engine.trace()


def _one(srv: Any, pids: dict[str, list[int]], spec: Any, variant: str) -> dict[str, Any]:
    groups = {k: v for k, v in pids.items() if v}
    seen = len(_trace(srv))
    before = {k: procfs.total(v) for k, v in groups.items()}
    t = time.perf_counter()
    rec = live.drive(srv.url, spec, variant)
    wall = time.perf_counter() - t
    after = {k: procfs.total(v) for k, v in groups.items()}
    trace = pd.DataFrame(_trace(srv)[seen:])
    trace = trace[trace["status"] == "ok"] if len(trace) else trace
    delta = {k: after[k] - before[k] for k in groups}
    all_ = sum(delta.values(), procfs.Counters())
    ok = int((rec["status"] == "ok").sum())
    n = max(ok, 1)
    lat = live.ok_latencies(rec)
    row: dict[str, Any] = {
        "requests": len(rec), "ok": ok, "run_s": wall,
        "vcsw_per_req": all_.voluntary / n, "ivcsw_per_req": all_.involuntary / n,
        "cpu_s_per_req": all_.cpu_s / n,
        "user_s_per_req": all_.user_s / n, "sys_s_per_req": all_.system_s / n,
        "wall_s_per_req": float(lat.mean()) if ok else float("nan"),
        "p50_s": float(lat.median()) if ok else float("nan"),
        "threads": sum(a.threads for a in after.values()),
    }
    row["cpu_over_wall"] = row["cpu_s_per_req"] / row["wall_s_per_req"]
    for col in ("queue_s", "compute_s", "ipc_s", "lock_wait_s"):  # the server's own split
        row[col] = (float(trace[col].mean())  # mean per request
                    if col in trace.columns and len(trace) else float("nan"))
    for k, d in delta.items():
        row[f"vcsw_{k}"] = d.voluntary / n
        row[f"ivcsw_{k}"] = d.involuntary / n
    return row


def measure(quick: bool = True, variant: str = "full", **over: Any) -> pd.DataFrame:
    p = {**plan(quick, variant), **over}
    rows = []
    for setup in p["setups"]:
        with live.server(setup, variant, (p["model"],)) as srv:
            pids = live.server_pids(srv)
            live.drive(srv.url, live.workload({p["model"]: 1.0}, p["rate"], p["warm_s"], 99),
                       variant)
            for rep in range(p["repeats"]):
                spec = live.workload({p["model"]: 1.0}, p["rate"], p["seconds"], seed=rep)
                rows.append({"setup": setup, "model": p["model"], "rate": p["rate"],
                             "repeat": rep, **_one(srv, pids, spec, variant)})
    return pd.DataFrame(rows)


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Per setup: the median over repeats and the min-max spread of the key figures."""
    cols = ["vcsw_per_req", "ivcsw_per_req", "cpu_s_per_req", "sys_s_per_req",
            "wall_s_per_req", "cpu_over_wall"]
    g = df.groupby("setup", sort=False)[cols]
    med, lo, hi = g.median(), g.min(), g.max()
    out = med.add_suffix("")
    for c in cols:
        out[f"{c}_min"], out[f"{c}_max"] = lo[c], hi[c]
    return out.reset_index()


