"""``describe(model)``: a model's schema, size and measured single-request latency.

This is what ``servelab models`` prints.  Latency is the median of ``repeats`` timed
:meth:`~servelab.servers.zoo.base.ZooModel.infer` calls on one request of the model's
``default_size`` (after ``warmups`` untimed calls), with the torch intra-op thread count set
explicitly (and restored afterwards).
"""

from __future__ import annotations

import logging
import resource
import statistics
import sys
import time
from typing import Any

import numpy as np

from servelab.servers.zoo.base import StageTimes, ZooModel

log = logging.getLogger(__name__)


def _rss_bytes() -> int:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:  # pragma: no cover - psutil is a dependency
        return 0


def _peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def measure_latency(
    model: ZooModel,
    size: int | None = None,
    threads: int = 1,
    repeats: int = 20,
    warmups: int = 3,
    seed: int = 0,
) -> dict[str, Any]:
    """Time single-request ``infer`` calls; returns seconds (median, p10, p90, min) and the
    median of each phase.  ``torch.set_num_threads(threads)`` is set for the measurement."""
    import torch

    if repeats < 1 or warmups < 0 or threads < 1:
        raise ValueError("need repeats >= 1, warmups >= 0, threads >= 1")
    size = model.default_size if size is None else size
    request = model.make_input(size, np.random.default_rng(seed))
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model.load()
        for _ in range(warmups):
            model.infer([request])
        totals: list[float] = []
        phases: list[StageTimes] = []
        for _ in range(repeats):
            times = StageTimes()
            t0 = time.perf_counter()
            model.infer([request], times)
            totals.append(time.perf_counter() - t0)
            phases.append(times)
    finally:
        torch.set_num_threads(previous)
    s = sorted(totals)
    q = np.percentile(s, [10, 90])
    return {
        "input_size": model.input_size(request),
        "threads": threads,
        "repeats": repeats,
        "warmups": warmups,
        "median_s": statistics.median(s),
        "p10_s": float(q[0]),
        "p90_s": float(q[1]),
        "min_s": s[0],
        "preprocess_s": statistics.median(p.preprocess for p in phases),
        "forward_s": statistics.median(p.forward for p in phases),
        "postprocess_s": statistics.median(p.postprocess for p in phases),
    }


def describe(
    model: ZooModel,
    threads: int = 1,
    repeats: int = 20,
    warmups: int = 3,
    size: int | None = None,
    measure: bool = True,
) -> dict[str, Any]:
    """A JSON-ready summary of ``model``: name, variant, parameter count and bytes, OIP
    input/output schema, size unit, and (``measure=True``) the single-request latency from
    :func:`measure_latency` plus memory.

    ``rss_delta_mb`` is the growth of this process's resident set from before the module is
    built to after the measurement (0 if it was already loaded; it includes libraries imported
    for the first time, e.g. torchvision or transformers); ``peak_rss_mb`` is the process's peak
    resident set so far.
    """
    rss_before = _rss_bytes()
    t0 = time.perf_counter()
    loaded_already = model._module is not None
    model.load()
    load_s = time.perf_counter() - t0
    info: dict[str, Any] = {
        "name": model.name,
        "variant": model.variant,
        "seed": model.seed,
        "weights": str(model.weights) if model.weights is not None else None,
        "parameters": model.num_parameters(),
        "param_bytes": model.param_bytes(),
        "param_mb": round(model.param_bytes() / 2**20, 2),
        "inputs": [spec.to_oip() for spec in model.inputs],
        "outputs": [spec.to_oip() for spec in model.outputs],
        "size_unit": model.size_unit,
        "default_size": model.default_size,
        "load_s": None if loaded_already else load_s,
    }
    if measure:
        info["latency"] = measure_latency(
            model, size=size, threads=threads, repeats=repeats, warmups=warmups
        )
    info["rss_delta_mb"] = 0.0 if loaded_already else (_rss_bytes() - rss_before) / 2**20
    info["peak_rss_mb"] = _peak_rss_bytes() / 2**20
    return info
