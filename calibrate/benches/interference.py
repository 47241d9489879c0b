"""Interference: per-request service time when k requests run at once, threads vs processes.

k workers (threads sharing one model, or forked processes sharing its weights copy-on-write)
each serve ``per_worker`` requests back to back, with one intra-op thread each.  The result has
every request's service time and the pool's throughput; throughput at k threads versus k
processes is what the GIL-share fit reads.  CPU time and context switches come from getrusage
(RUSAGE_SELF for threads, RUSAGE_CHILDREN for processes).

For processes with k > 1 the point also measures its own baseline, interleaved: ``ROUNDS``
rounds of one solo child then k children, each serving its share of the requests.  ``ratio`` —
the median over rounds of (median service time beside k-1 others / median alone) — is then
immune to the machine drifting between points (its speed moves by tens of percent within an
hour on a shared host; two separate points minutes apart measured 0.99 and 1.49 for the same
ratio).
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np


def _serve(model: Any, inputs: list[Any], n: int) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        model.infer([inputs[i % len(inputs)]])
        out.append(time.perf_counter() - t)
    return out


def _child(model: Any, inputs: list[Any], n: int, conn: Any) -> None:
    import torch

    torch.set_num_threads(1)
    conn.send(_serve(model, inputs, n))
    conn.close()


ROUNDS = 3


def _fork_burst(ctx: Any, model: Any, inputs: list[Any], k: int, n: int) -> list[float]:
    """k forked children serving ``n`` requests each, at once: every request's service time."""
    pipes, procs = [], []
    for _ in range(k):
        parent, child = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_child, args=(model, inputs, n, child))
        p.start()
        child.close()
        pipes.append(parent)
        procs.append(p)
    times: list[float] = []
    for parent in pipes:
        times += parent.recv()
    for p in procs:
        p.join()
    return times


def measure(params: Mapping[str, Any], warmups: int, samples: int) -> dict[str, Any]:
    import torch

    from servelab.servers.zoo import get_model

    torch.set_num_threads(1)
    mode, k = params.get("mode", "threads"), int(params.get("k", 1))
    if mode not in ("threads", "processes"):
        raise ValueError(f"unknown mode {mode!r}; valid: threads, processes")
    model = get_model(params["model"], variant=params.get("variant", "full"))
    model.load()
    rng = np.random.default_rng(0)
    inputs = [model.make_input(params.get("size"), rng) for _ in range(4)]
    _serve(model, inputs, max(warmups, 1))
    per_worker = max(samples, 1)
    who = resource.RUSAGE_SELF if mode == "threads" else resource.RUSAGE_CHILDREN
    r0 = resource.getrusage(who)
    t0 = time.perf_counter()
    times: list[float] = []
    if mode == "threads":
        results: list[list[float]] = [[] for _ in range(k)]

        def work(j: int) -> None:
            results[j] = _serve(model, inputs, per_worker)

        threads = [threading.Thread(target=work, args=(j,)) for j in range(k)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for r in results:
            times += r
    else:
        ctx = mp.get_context("fork")
        times = _fork_burst(ctx, model, inputs, k, per_worker)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(who)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    extra: dict[str, Any] = {}
    if mode == "processes" and k > 1:
        share = max(per_worker // ROUNDS, 1)
        ratios = []
        for _ in range(ROUNDS):
            solo = _fork_burst(ctx, model, inputs, 1, share)
            beside = _fork_burst(ctx, model, inputs, k, share)
            ratios.append(float(np.median(beside) / np.median(solo)))
        extra = {"ratio": float(np.median(ratios)), "ratios": ratios}
    return {
        **extra, "samples": times, "mode": mode, "k": k, "wall": wall,
        "throughput": k * per_worker / wall, "cpu_time": cpu,
        "voluntary_cs": r1.ru_nvcsw - r0.ru_nvcsw, "involuntary_cs": r1.ru_nivcsw - r0.ru_nivcsw,
    }
