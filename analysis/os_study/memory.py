"""Section 6's memory rows: USS / PSS per worker and copy-on-write after ``fork``.

In a fresh (spawned) interpreter — torch on one thread, so forking is safe — the model is
loaded and run once, then two workers are forked, as the process server's zygote does.  Both
workers step through the same stages together, and after each the parent reads their
``/proc/<pid>/smaps_rollup``:

1. ``forked`` — right after ``fork``: every page is shared with the parent;
2. ``inferred`` — after 3 inferences: the weights are only read, so they stay shared;
3. ``collected`` — after ``gc.collect()``: the collector writes to every tracked object's
   header, dirtying the pages those objects live on (unless the parent ran ``gc.freeze()``
   before forking: the ``freeze`` column);
4. ``written`` — after an in-place write to every parameter (``p.mul_(1.0)``): each weight
   page is copied into the worker, the cost copy-on-write spares a worker that only reads.

USS = Private_Clean + Private_Dirty (what the worker alone holds: what one more worker costs),
PSS = its fair share of shared pages.  The calibration's memory bench
(:mod:`servelab.calibrate.benches.memory`) adds the thread side: RSS growth per inference
thread in one process.
"""

from __future__ import annotations

import gc
import json
import multiprocessing as mp
import os
from typing import Any

import pandas as pd

from servelab.analysis.os_study.procfs import smaps_rollup

STAGES = ("forked", "inferred", "collected", "written")
KEYS = ("Rss", "Pss", "Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty")


def _touch(module: Any) -> None:
    """Write every parameter in place (torch tensors; NumPy arrays for the tests)."""
    params = list(module.parameters())
    if params and hasattr(params[0], "mul_"):
        import torch

        with torch.no_grad():
            for p in params:
                p.mul_(1.0)
    else:
        for p in params:
            p *= 1


def _worker(model: Any, inp: Any, go: int, ready: int) -> None:
    for stage in STAGES:
        if stage == "inferred":
            for _ in range(3):
                model.infer([inp])
        elif stage == "collected":
            gc.collect()
        elif stage == "written":
            _touch(model.module)
        os.write(ready, b"r")
        os.read(go, 1)
    os._exit(0)


def _cow(model: Any, inp: Any, freeze: bool, workers: int) -> list[dict[str, Any]]:
    if freeze:
        gc.freeze()
    kids = []
    for _ in range(workers):
        go_r, go_w = os.pipe()
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            _worker(model, inp, go_r, ready_w)
        kids.append((pid, go_w, ready_r))
    rows = []
    try:
        for stage in STAGES:
            for _, _, ready in kids:
                os.read(ready, 1)
            for w, (pid, _, _) in enumerate(kids):
                mem = smaps_rollup(pid)
                rows.append({"freeze": freeze, "stage": stage, "worker": w,
                             **{f"{k.lower()}_mb": mem.get(k, 0) / 1024 for k in KEYS},
                             "uss_mb": (mem.get("Private_Clean", 0)
                                        + mem.get("Private_Dirty", 0)) / 1024})
            for _, go, _ in kids:
                os.write(go, b"g")
    finally:
        for pid, go, ready in kids:
            os.waitpid(pid, 0)
            os.close(go)
            os.close(ready)
        if freeze:
            gc.unfreeze()
    return rows


def _study(model_name: str, variant: str, workers: int, out: Any) -> None:
    """Runs in a spawned interpreter; puts JSON (rows, the memory bench's result) on ``out``."""
    import numpy as np
    import torch

    from servelab.calibrate.benches.memory import measure as memory_bench
    from servelab.servers.zoo import get_model

    torch.set_num_threads(1)
    model = get_model(model_name, variant=variant)
    model.load()
    inp = model.make_input(None, np.random.default_rng(0))
    model.infer([inp])
    rows = _cow(model, inp, False, workers) + _cow(model, inp, True, workers)
    for r in rows:
        r["param_mb"] = model.param_bytes() / 2**20
    bench = memory_bench({"model": model_name, "workers": workers, "variant": variant}, 0, 1)
    out.put(json.dumps({"rows": rows, "bench": bench}))


def measure(quick: bool = True, variant: str = "full", **over: Any) -> pd.DataFrame:
    model = over.get("model", "mobilenet_v2")
    workers = int(over.get("workers", 2))
    ctx = mp.get_context("spawn")  # not a Pool: its daemonic workers may not fork children
    q = ctx.Queue()
    proc = ctx.Process(target=_study, args=(model, variant, workers, q))
    proc.start()
    try:
        out = json.loads(q.get(timeout=300))
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.terminate()
    df = pd.DataFrame(out["rows"])
    b = out["bench"]
    df["model"] = model
    df["thread_rss_mb"] = b["thread_mb"]          # RSS growth per inference thread
    df["model_rss_mb"] = b["model_mb"]            # RSS growth of loading the model
    df["bench_uss_mb"] = sum(b["uss_mb"]) / len(b["uss_mb"])  # per worker after 3 inferences
    return df
