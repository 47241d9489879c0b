"""Co-run: two inference threads of one interpreter side by side, each serving one model.

What the GIL fit reads.  Each model is first run alone (one thread, back to back) for its solo
time per request; then two threads serve models ``a`` and ``b`` at once for ``seconds``.  A
thread's *progress rate* is the solo-time worth of requests it completed per second of wall
time (1.0 = as fast as alone).  Both threads start together behind a barrier and each is timed
to its own last completion, so neither the start order nor a partial last request biases it.
With two cores the cores alone would let both run at rate 1: what is missing is the GIL
(:mod:`servelab.core.gil` is the model fitted to these rates).

The kind ``frontend`` stands for a server's own request handling: decoding a MobileNetV2 OIP
request body (JSON) and encoding its response with the servers' codec — pure Python work.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np


def _loop(model: Any, inputs: list[Any], until: float, out: list[float]) -> None:
    i = 0
    while True:
        t = time.perf_counter()
        if t >= until and i > 0:
            return
        model.infer([inputs[i % len(inputs)]])
        out.append(time.perf_counter() - t)
        i += 1


def _solo(model: Any, inputs: list[Any], seconds: float) -> float:
    out: list[float] = []
    _loop(model, inputs, time.perf_counter() + seconds, out)
    return float(np.mean(out))


class FrontendWork:
    """The front end's Python work per request, shaped like a model (``infer``)."""

    def __init__(self) -> None:
        from servelab.servers.oip import encode_request
        from servelab.servers.zoo import get_model

        self.spec = get_model("mobilenet_v2", variant="tiny").inputs
        rng = np.random.default_rng(0)
        image = rng.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
        self.body = encode_request({"image": image})[0]
        self.out = {"probabilities": rng.random((1, 10), dtype=np.float32),
                    "label": np.array([3], dtype=np.int64)}

    def load(self) -> None:
        return None

    def make_input(self, size: Any, rng: Any) -> bytes:
        return self.body

    def infer(self, batch: list[bytes]) -> Any:
        from servelab.servers.oip import decode_request, encode_response

        for body in batch:
            decode_request(body, self.spec)
            encode_response("mobilenet_v2", self.out)
        return None


def _get(name: str, variant: str) -> Any:
    """A kind: ``frontend``, a model, or ``<model>+<kernel>`` (the model on an ffi kernel)."""
    if name == "frontend":
        return FrontendWork()
    from servelab.servers.zoo import get_model

    model_name, _, kernel = name.partition("+")
    model = get_model(model_name, variant=variant)
    if kernel:
        from servelab.servers.kernel_models import apply_kernel

        model = apply_kernel(model, kernel)
    return model


def _pair(loaded: Mapping[str, tuple[Any, list[Any]]], names: list[str], seconds: float,
          solo: Mapping[str, float]) -> tuple[list[float], list[int]]:
    outs: list[list[float]] = [[], []]
    barrier = threading.Barrier(2)
    ends = [0.0, 0.0]
    starts = [0.0, 0.0]

    def work(j: int) -> None:
        model, inputs = loaded[names[j]]
        barrier.wait()
        starts[j] = time.perf_counter()
        _loop(model, inputs, starts[j] + seconds, outs[j])
        ends[j] = time.perf_counter()

    threads = [threading.Thread(target=work, args=(j,)) for j in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rates = [len(outs[j]) * solo[names[j]] / (ends[j] - starts[j]) for j in range(2)]
    return rates, [len(o) for o in outs]


def measure(params: Mapping[str, Any], warmups: int, samples: int) -> dict[str, Any]:
    """Every unordered pair of ``kinds`` (each with itself too), in one process: the models
    are loaded once and every thread runs with one intra-op thread, so nothing leaks between
    pairs but caches."""
    import itertools

    import torch

    torch.set_num_threads(1)
    kinds = list(params["kinds"])
    seconds = float(params.get("seconds", 2.0))
    long_s = float(params.get("long_seconds", 2 * seconds))  # pairs with a slow model
    slow = set(params.get("slow", ["distilbert"]))
    sizes = params.get("sizes", {})
    rng = np.random.default_rng(0)
    loaded: dict[str, tuple[Any, list[Any]]] = {}
    for name in kinds:
        model = _get(name, params.get("variant", "full"))
        model.load()
        inputs = [model.make_input(sizes.get(name), rng) for _ in range(4)]
        for _ in range(max(warmups, 1)):
            model.infer([inputs[0]])
        loaded[name] = (model, inputs)
    solo = {name: _solo(*loaded[name], min(seconds, 1.0)) for name in kinds}
    pairs = []
    with_ = set(params.get("only_with", kinds))  # pairs with at least one of these kinds
    for a, b in itertools.combinations_with_replacement(kinds, 2):
        if not with_ & {a, b}:
            continue
        secs = long_s if slow & {a, b} else seconds
        (ra, rb), (na, nb) = _pair(loaded, [a, b], secs, solo)
        pairs.append({"a": a, "b": b, "rate_a": ra, "rate_b": rb, "n_a": na, "n_b": nb})
    return {"samples": [p["rate_a"] for p in pairs], "pairs": pairs, "solo_s": solo}
