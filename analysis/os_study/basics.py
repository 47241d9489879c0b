"""Section 6's primitives: what a thread and a process cost to start, what a context switch
costs between two threads and between two processes, and what the GIL does to two threads.

* ``spawn``: ``threading.Thread`` start + join; ``os.fork`` + ``_exit`` + ``waitpid`` (the bare
  kernel cost for this interpreter's address space); ``multiprocessing`` ``fork`` and
  ``spawn`` contexts (``spawn``: a fresh interpreter, before it imports any model code — a
  spawned server worker pays its imports and model load on top).  One row per sample.
* ``pingpong``: the calibration's pipe ping-pong (:mod:`servelab.calibrate.benches.ctxswitch`),
  time per switch; between threads it includes the GIL hand-off.
* ``gil``: the GIL study's kernels (:mod:`servelab.analysis.gil_study`): the C LSTM kernel
  built to release the GIL and built to hold it, 1 and 2 workers, threads vs processes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from typing import Any

import pandas as pd


def _nothing() -> None:
    return None


def _time(fn: Any, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def _thread() -> None:
    t = threading.Thread(target=_nothing)
    t.start()
    t.join()


def _fork() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def _mp(method: str) -> Any:
    ctx = mp.get_context(method)

    def run() -> None:  # os.getpid: a target the child imports nothing extra for
        p = ctx.Process(target=os.getpid)  # type: ignore[attr-defined]
        p.start()
        p.join()
    return run


def measure_spawn(quick: bool = True, variant: str = "full", **over: Any) -> pd.DataFrame:
    n = int(over.get("samples", 30 if quick else 100))
    kinds = {"thread": (_thread, n), "os.fork": (_fork, n), "mp-fork": (_mp("fork"), n // 3),
             "mp-spawn": (_mp("spawn"), max(2, n // 10))}
    rows = []
    for kind, (fn, k) in kinds.items():
        fn()  # warm
        rows += [{"kind": kind, "sample": i, "seconds": s} for i, s in enumerate(_time(fn, k))]
    return pd.DataFrame(rows)


def measure_pingpong(quick: bool = True, variant: str = "full", **over: Any) -> pd.DataFrame:
    from servelab.calibrate.benches.ctxswitch import measure as bench

    samples = int(over.get("samples", 5 if quick else 15))
    rounds = int(over.get("rounds", 2000))
    rows = []
    for kind in ("thread", "process"):
        res = bench({"kind": kind, "rounds": rounds}, 1, samples)
        rows += [{"kind": kind, "sample": i, "switch_s": s} for i, s in enumerate(res["samples"])]
    return pd.DataFrame(rows)


def measure_gil(quick: bool = True, variant: str = "full", **over: Any) -> pd.DataFrame:
    from servelab.analysis.gil_study import StudyConfig, add_derived, run_study

    cfg = StudyConfig(variants=tuple(over.get("variants", ("c-release", "c-hold"))),
                      ops=("lstm",), workers=(1, 2), duration_s=float(over.get(
                          "duration_s", 1.0 if quick else 3.0)), warmup_s=0.2,
                      model_variant=variant, repeat=int(over.get("repeat", 1 if quick else 3)))
    df = add_derived(run_study(cfg))
    keep = ["repeat", "variant", "mode", "workers", "calls_per_s", "speedup", "efficiency"]
    return df[[c for c in keep if c in df.columns]].reset_index(drop=True)
