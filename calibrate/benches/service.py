"""Service time of one zoo model: per input size and batch size, at a set intra-op thread count.

Every sample is one ``infer`` call on a batch of requests of one input size, split into
preprocess / forward / postprocess.  ``sizes`` are measured at batch 1; each of ``batches`` is
measured at the model's default size (batch sizes share a process: unlike thread counts they
leave no state behind).  The worker sets ``torch.set_num_threads`` explicitly before
loading the model (thread-pool state is per process: that is why each point gets a fresh one).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np


def _nbytes(arr: np.ndarray) -> int:
    """Payload bytes of a tensor (BYTES elements by their length)."""
    if arr.dtype == object:
        return sum(len(x) if isinstance(x, bytes | str) else 8 for x in arr.reshape(-1))
    return int(arr.nbytes)


def measure(params: Mapping[str, Any], warmups: int, samples: int) -> dict[str, Any]:
    import torch

    from servelab.servers.zoo import StageTimes, get_model

    threads = int(params.get("threads", 1))
    torch.set_num_threads(threads)
    model = get_model(params["model"], variant=params.get("variant", "full"))
    kernel = str(params.get("kernel", "torch"))
    if kernel != "torch":  # the request path on an ffi kernel (servelab serve --kernel)
        from servelab.servers.kernel_models import apply_kernel

        model = apply_kernel(model, kernel)
    model.load()
    sizes = list(params.get("sizes") or [model.default_size])
    combos = [(s, 1) for s in sizes] + [
        (model.default_size, int(b)) for b in params.get("batches", []) if int(b) > 1
    ]
    rng = np.random.default_rng(int(params.get("seed", 0)))
    # At least ``samples`` samples per combination, and at least ``min_time_s`` of them: a
    # sub-millisecond model needs hundreds of samples for a stable median, a slow one a few.
    min_time = float(params.get("min_time_s", 0.0))
    rows: list[dict[str, Any]] = []
    for size, batch in combos:
        inputs = [model.make_input(size, rng) for _ in range(batch)]
        in_bytes = sum(_nbytes(x) for inp in inputs for x in inp.values()) / batch
        i, t_end = 0, None
        while i < warmups + samples or (t_end is not None and time.perf_counter() < t_end
                                        and i < warmups + 2000):
            if i == warmups:
                t_end = time.perf_counter() + min_time
            i += 1
            times = StageTimes()
            t = time.perf_counter()
            outputs = model.infer(inputs, times)
            total = time.perf_counter() - t
            if i > warmups:
                rows.append({
                    "model": model.name, "input_size": int(size), "batch": batch,
                    "threads": threads, "preprocess": times.preprocess,
                    "forward": times.forward, "postprocess": times.postprocess, "total": total,
                    "input_bytes": in_bytes,
                    "output_bytes": sum(_nbytes(x) for x in outputs[0].values()),
                })
    n_stages = len(model.stages(model.preprocess([model.make_input(sizes[0], rng)])))
    return {"samples": [r["total"] for r in rows], "rows": rows, "stages": n_stages,
            "param_bytes": model.param_bytes()}
