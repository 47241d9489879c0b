"""Warmth: what one inference costs after the worker sat idle for a while.

Back to back (the service benchmark's condition) a model's weights and activations stay in
the caches and the core stays awake; after an idle gap of a few milliseconds they do not, and
a small model pays for it on every request (MobileNetV2 about twice its back-to-back time on
this machine; DistilBERT, which streams its weights from memory anyway, nothing).  For each
model at its default size, ``samples`` requests are timed after each idle gap (thread CPU
time, so wake-up latency is not counted twice; the lower quartile, as interruptions only
add time); the simulator charges the difference to a
worker's batch by the gap since that worker's previous batch.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

GAPS_S = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1)


def measure(params: Mapping[str, Any], warmups: int, samples: int) -> dict[str, Any]:
    import torch

    from servelab.servers.zoo import get_model

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    gaps = tuple(float(g) for g in params.get("gaps", GAPS_S))
    slow = set(params.get("slow", ["distilbert"]))
    out: dict[str, Any] = {}
    for name in params["models"]:
        model = get_model(name, variant=params.get("variant", "full"))
        model.load()
        size = params.get("sizes", {}).get(name)
        inputs = [model.make_input(size, rng) for _ in range(4)]
        for _ in range(max(warmups, 1)):
            model.infer([inputs[0]])
        n = max(2, samples // 4) if name in slow else samples
        per_gap = []
        for gap in gaps:
            cpu = []
            for i in range(n):
                if gap:
                    time.sleep(gap)
                else:
                    model.infer([inputs[i % 4]])  # keep it warm right before
                c = time.thread_time()
                model.infer([inputs[i % 4]])
                cpu.append(time.thread_time() - c)
            per_gap.append(float(np.percentile(cpu, 25)))  # noise only ever adds time
        out[name] = {"size": model.input_size(inputs[0]), "gaps_s": list(gaps),
                     "cpu_s": per_gap}
    return {"samples": [v for m in out.values() for v in m["cpu_s"]], "models": out}
