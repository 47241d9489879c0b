"""Service time of one zoo model: per input size and batch size, at a set intra-op thread count.

Every sample is one ``infer`` call on a batch of ``batch`` requests of one input size, split into
preprocess / forward / postprocess.  The worker sets ``torch.set_num_threads`` explicitly before
loading the model (thread-pool state is per process: that is why each point gets a fresh one).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np


def measure(params: Mapping[str, Any], warmups: int, samples: int) -> dict[str, Any]:
    import torch

    from servelab.servers.zoo import StageTimes, get_model

    threads = int(params.get("threads", 1))
    torch.set_num_threads(threads)
    model = get_model(params["model"], variant=params.get("variant", "full"))
    model.load()
    batch = int(params.get("batch", 1))
    sizes = list(params.get("sizes") or [model.default_size])
    rng = np.random.default_rng(int(params.get("seed", 0)))
    rows: list[dict[str, Any]] = []
    for size in sizes:
        inputs = [model.make_input(size, rng) for _ in range(batch)]
        for i in range(warmups + samples):
            times = StageTimes()
            t = time.perf_counter()
            model.infer(inputs, times)
            total = time.perf_counter() - t
            if i >= warmups:
                rows.append({
                    "model": model.name, "input_size": int(size), "batch": batch,
                    "threads": threads, "preprocess": times.preprocess,
                    "forward": times.forward, "postprocess": times.postprocess, "total": total,
                })
    n_stages = len(model.stages(model.preprocess([model.make_input(sizes[0], rng)])))
    return {"samples": [r["total"] for r in rows], "rows": rows, "stages": n_stages,
            "param_bytes": model.param_bytes()}
