"""Memory per worker under each concurrency model: RSS, USS and PSS (psutil).

The parent imports torch and measures its base; loads the model (``model_mb`` = RSS growth
including one inference); forks ``workers`` processes that each serve a request and reports
every child's USS (memory only it holds: what each extra worker really costs under
copy-on-write) and PSS (its fair share of shared pages); then starts ``workers`` threads that
each serve a request (``thread_mb`` = RSS growth per thread).
"""

from __future__ import annotations

import multiprocessing as mp
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import psutil

MB = 1024 * 1024


def _rss() -> float:
    return psutil.Process().memory_info().rss / MB


def _child(model: Any, inp: Any, ready: Any, stop: Any) -> None:
    import torch

    torch.set_num_threads(1)
    for _ in range(3):
        model.infer([inp])
    ready.set()
    stop.wait(60)


def measure(params: Mapping[str, Any], warmups: int, samples: int) -> dict[str, Any]:
    import torch

    from servelab.servers.zoo import get_model

    torch.set_num_threads(1)
    workers = int(params.get("workers", 2))
    base = _rss()
    model = get_model(params["model"], variant=params.get("variant", "full"))
    model.load()
    inp = model.make_input(None, np.random.default_rng(0))
    model.infer([inp])
    loaded = _rss()
    out: dict[str, Any] = {"base_mb": base, "model_mb": loaded - base, "workers": workers,
                           "param_mb": model.param_bytes() / MB}
    ctx = mp.get_context("fork")
    stop = ctx.Event()
    readies = [ctx.Event() for _ in range(workers)]
    procs = [ctx.Process(target=_child, args=(model, inp, r, stop)) for r in readies]
    for p in procs:
        p.start()
    for r in readies:
        r.wait(120)
    uss, pss, rss = [], [], []
    for p in procs:
        info = psutil.Process(p.pid).memory_full_info()
        uss.append(info.uss / MB)
        pss.append(getattr(info, "pss", info.uss) / MB)
        rss.append(info.rss / MB)
    stop.set()
    for p in procs:
        p.join(30)
    out.update({"uss_mb": uss, "pss_mb": pss, "rss_mb": rss, "samples": uss})
    loaded = _rss()
    release = threading.Event()
    ready = [threading.Event() for _ in range(workers)]

    def work(j: int) -> None:
        for _ in range(3):
            model.infer([inp])
        ready[j].set()
        release.wait(60)

    ts = [threading.Thread(target=work, args=(j,)) for j in range(workers)]
    for t in ts:
        t.start()
    for e in ready:
        e.wait(120)
    out["thread_mb"] = (_rss() - loaded) / workers
    release.set()
    for t in ts:
        t.join()
    return out
