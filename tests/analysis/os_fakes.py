"""Small frames shaped like each OS-study measurement's (for the report sections' tests, which
check layout and claims, not the machine)."""

from __future__ import annotations

import pandas as pd

from servelab.analysis.os_study.ctxsw import SETUPS
from servelab.analysis.os_study.ipc import METHODS

RUN = {"run_wall_s": 1.0, "run_load1_before": 0.5, "run_load1_after": 0.6}


def frames() -> dict[str, pd.DataFrame]:
    ctxsw = pd.DataFrame([{"setup": s, "model": "noop", "rate": 20.0, "repeat": r,
                           "vcsw_per_req": 10.0 + i + r, "ivcsw_per_req": 2.0 + i,
                           "cpu_s_per_req": (2.0 + i) / 1e3, "sys_s_per_req": 0.5e-3,
                           "wall_s_per_req": 5e-3, "cpu_over_wall": (2.0 + i) / 5.0}
                          for i, s in enumerate(SETUPS) for r in (0, 1)])
    ipc = pd.DataFrame([{"method": m, "bytes": b, "sample": k,
                         "one_way_s": 1e-5 * (1 + b / 1e5) * (0.5 if m == "shm" and b > 1e4
                                                               else 1.0) * (1 + k / 10)}
                        for m in METHODS for b in (64, 65536, 1 << 20) for k in range(4)])
    spawn = pd.DataFrame([{"kind": k, "sample": i, "seconds": s * (1 + i / 10)}
                          for k, s in (("thread", 7e-5), ("os.fork", 5e-3), ("mp-fork", 1e-2),
                                       ("mp-spawn", 0.1)) for i in range(3)])
    ping = pd.DataFrame([{"kind": k, "sample": i, "switch_s": s}
                         for k, s in (("thread", 4e-6), ("process", 6e-6)) for i in range(3)])
    stages = ("forked", "inferred", "collected", "written")
    memory = pd.DataFrame([{"freeze": f, "stage": st, "worker": w, "pss_mb": 100.0 + j,
                            "uss_mb": 1.0 + j * (20 if not f and st != "forked" else 1),
                            "param_mb": 9.0, "thread_rss_mb": 0.5}
                           for f in (False, True) for j, st in enumerate(stages)
                           for w in (0, 1)])
    locks = pd.DataFrame([{"mode": m, "repeat": 0, "lock_wait_mean_s": w / 1e3,
                           "lock_wait_p99_s": 10 * w / 1e3, "waited_share": w / 10,
                           "p99_s": (40 + w) / 1e3}
                          for m, w in (("global", 1.0), ("per-model", 0.1))])
    deadlock = pd.DataFrame([{"request": q, "status": s, "seconds": t, "watchdog_s": 1.0,
                              "error": "deadlock detected: ... 'deadlock-A' ... 'deadlock-B'",
                              "stacks_logged": 12}
                             for q, s, t in (("A then B", 500, 1.3), ("B then A", 500, 1.3),
                                             ("after, 2 s deadline", 504, 2.0))])
    gil = pd.DataFrame([{"repeat": 0, "variant": v, "mode": m, "workers": w,
                         "speedup": 1.0 if w == 1 else (1.9 if v == "c-release" or
                                                        m == "processes" else 1.0)}
                        for v in ("c-release", "c-hold") for m in ("threads", "processes")
                        for w in (1, 2)])
    sched = pd.DataFrame([{"policy": p, "seed": s, "wait_mean_distilbert": a,
                           "wait_max_distilbert": 3 * a, "wait_mean_mobilenet_v2": b}
                          for p, a, b in (("fifo", 0.2, 0.2), ("priority", 0.3, 0.05),
                                          ("mlfq", 0.05, 0.04)) for s in (0, 1)])
    perf = pd.DataFrame([{"paranoid": "2", "perf": "/usr/bin/perf", "event": e, "kind": k,
                          "supported": k == "sw", "value": 10.0 if k == "sw" else float("nan"),
                          "reason": "" if k == "sw" else "<not supported>"}
                         for e, k in (("cycles", "hw"), ("cache-misses", "hw"),
                                      ("context-switches", "sw"))])
    cache = pd.DataFrame([{"bytes": b, "repeat": r, "s_per_read": (2.0 + b / 2**22) / 1e9}
                          for b in (16 << 10, 1 << 20, 64 << 20) for r in (0, 1)])
    affinity = pd.DataFrame([{"condition": c, "repeat": 0, "throughput": 50.0, "p50_s": 0.010,
                              "p99_s": p / 1e3, "ivcsw_per_req": 2.0}
                             for c, p in (("unpinned", 40.0), ("spread", 35.0),
                                          ("same-core", 80.0))])
    out = {"ctxsw": ctxsw, "ipc": ipc, "spawn": spawn, "pingpong": ping, "memory": memory,
           "locks": locks, "deadlock": deadlock, "gil": gil, "sched": sched, "perf": perf,
           "cache": cache, "affinity": affinity}
    return {k: v.assign(**RUN) for k, v in out.items()}
