"""Service demand: how much CPU work each request and each batch costs, drawn from the profile.

Everything per request is computed up front, vectorized, when the run starts: the model's
preprocess / forward / postprocess costs at the request's input size, a noise factor (mean 1,
the profile's distribution and CV), and the server overheads the configuration adds — with
a live-measured front end only the worker's half of IPC (the rest is
:mod:`servelab.sim.frontend`'s), otherwise the microbenchmarked HTTP stack, IPC hand-off and
asyncio loop work.  The simulator then only looks numbers up.

A *job* is what the CPU model runs: ``work`` seconds of CPU at full speed, an average
``demand`` in busy threads (intra-op threads make the forward pass use several), and a ``gil``
share (fraction of the work holding the GIL).  The overheads are folded into the worker's job
(half at the start, half at the end), so they take CPU and GIL time from the same pool as
inference: an approximation — in the live servers HTTP runs on other threads — that keeps the
capacity accounting right at one job per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from servelab.core.config import ServerConfig
from servelab.core.profile import ModelProfile, Profile, setup_name
from servelab.core.requests import Request
from servelab.core.workload import Arrivals


def noise(dist: str, cv: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` i.i.d. multiplicative noise factors with mean 1 and coefficient of variation ``cv``."""
    if dist == "deterministic" or (cv == 0 and dist != "exponential"):
        return np.ones(n)
    if dist == "exponential":
        return rng.exponential(1.0, n)
    if dist == "gamma":
        shape = 1.0 / cv**2
        return rng.gamma(shape, 1.0 / shape, n)
    if dist == "lognormal":
        s2 = np.log1p(cv**2)
        return np.exp(rng.normal(-s2 / 2, np.sqrt(s2), n))
    raise ValueError(f"unknown service distribution {dist!r}")


@dataclass(frozen=True, slots=True)
class Job:
    """CPU work for one run of a batch: segment works (stage boundaries between them)."""

    segments: tuple[float, ...]
    demand: float
    gil: float


class ServiceModel:
    """Per-request costs for one configuration and one generated workload."""

    def __init__(
        self, profile: Profile, config: ServerConfig, arrivals: Arrivals, rng: np.random.Generator
    ):
        self.profile = profile
        self.config = config
        self.threads = config.intra_op_threads
        names = arrivals.models
        self.model_profiles: list[ModelProfile] = [profile.model(m) for m in names]
        n = len(arrivals)
        idx = arrivals.model_idx
        sizes = arrivals.input_size.astype(float)
        pre, fwd, post = np.zeros(n), np.zeros(n), np.zeros(n)
        eps, gil_m, nbytes = np.ones(n), np.zeros(n), np.zeros(n)
        for j, mp in enumerate(self.model_profiles):
            sel = idx == j
            k = int(sel.sum())
            if not k:
                continue
            s = sizes[sel]
            pre[sel] = mp.preprocess.evaluate(s)
            fwd[sel] = mp.forward.evaluate(s) / mp.speedup(self.threads)
            post[sel] = mp.postprocess.evaluate(s)
            eps[sel] = noise(mp.dist, mp.cv, k, rng)
            gil_m[sel] = mp.gil_share
            nbytes[sel] = mp.input_bytes_fixed + mp.input_bytes_per_unit * s + mp.output_bytes
        over, over_gil = self._overheads(nbytes)
        service = (pre + fwd + post) * eps
        work = service + over
        gil_work = gil_m * service + over_gil
        busy = (pre + post + fwd * self.threads) * eps + over
        self.shared_gil = gil_shared(config)
        # Plain lists: the event loop indexes them one element at a time.
        self.eps = eps.tolist()
        self.pre = (pre * eps).tolist()
        self.post = (post * eps).tolist()
        self.over = over.tolist()
        self.over_gil = over_gil.tolist()
        self.service = service.tolist()
        self.solo_work = work.tolist()
        self.solo_demand = np.divide(busy, work, out=np.ones(n), where=work > 0).tolist()
        self.solo_gil = (
            np.divide(gil_work, work, out=np.zeros(n), where=work > 0).tolist()
            if self.shared_gil else [0.0] * n
        )
        # Expected service per model at this workload's sizes (noise-free): predictor priors.
        self.expected = {
            names[j]: float(((pre + fwd + post)[idx == j]).mean())
            for j in range(len(names)) if (idx == j).any()
        }

    def _overheads(self, nbytes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-request server overhead work inside the worker's job, and its GIL-held part.

        When the profile measured this setup's front end live, the HTTP and event-loop work
        is the front end's own (:mod:`servelab.sim.frontend`) and only the worker-side IPC
        stays here; otherwise the microbenchmarked HTTP, IPC and loop costs are folded in.
        """
        p, c = self.profile, self.config
        live_fe = setup_name(c.concurrency, c.offload) in p.frontend
        over = np.zeros_like(nbytes)
        over_gil = np.zeros_like(nbytes)
        if not live_fe:
            http = p.http_cost(c.concurrency)
            over = http.fixed_s + http.per_byte_s * nbytes
            over_gil = over * http.gil_share
        if c.concurrency == "processes" or (c.concurrency == "async" and c.offload == "process"):
            ipc = p.ipc.fixed_s + p.ipc.per_byte_s * nbytes
            if live_fe:
                ipc = ipc / 2  # the server's half is in the front end's measured CPU
            over = over + ipc
            over_gil = over_gil + ipc
        if c.concurrency == "async" and not live_fe:
            loop = p.event_loop.per_request_s + (
                p.event_loop.thread_handoff_s if c.offload == "thread"
                else p.event_loop.inline_block_s if c.offload == "inline" else 0.0
            )
            over = over + loop
            over_gil = over_gil + loop
        return over, over_gil

    def job(self, members: Sequence[Request], mp: ModelProfile, stage: int, split: bool) -> Job:
        """The CPU job for running ``members`` (one model, all at forward stage ``stage``).

        ``split`` cuts the forward pass into the model's stages (for preemption); otherwise the
        whole remainder is one segment.  Overheads and pre/postprocessing are charged once: at
        stage 0 and at the last stage.
        """
        b = len(members)
        ids = [r.id for r in members]
        if b == 1:
            i = ids[0]
            fwd_total = self.service[i] - self.pre[i] - self.post[i]
            pre, post, over = self.pre[i], self.post[i], self.over[i]
            over_gil = self.over_gil[i]
        else:
            size = max(r.input_size for r in members)
            mean_eps = sum(self.eps[i] for i in ids) / b
            fwd_total = (
                float(mp.forward(size)) / mp.speedup(self.threads) * b**mp.batch_exponent * mean_eps
            )
            pre = sum(self.pre[i] for i in ids)
            post = sum(self.post[i] for i in ids)
            over = sum(self.over[i] for i in ids)
            over_gil = sum(self.over_gil[i] for i in ids)
        k = mp.stages
        per_stage = fwd_total / k
        first = (pre + over / 2) if stage == 0 else 0.0
        last = post + over / 2
        if split:
            segs = [per_stage] * (k - stage)
            segs[0] += first
            segs[-1] += last
        else:
            segs = [first + per_stage * (k - stage) + last]
        work = sum(segs)
        model_work = work - (over if stage == 0 else over / 2)
        if work <= 0:
            return Job(tuple(segs), 1.0, 0.0)
        busy = work - per_stage * (k - stage) + per_stage * (k - stage) * self.threads
        gil = 0.0
        if self.shared_gil:
            gil_over = over_gil if stage == 0 else over_gil / 2
            gil = (mp.gil_share * model_work + gil_over) / work
        return Job(tuple(segs), busy / work, min(gil, 1.0))


def gil_shared(config: ServerConfig) -> bool:
    """Whether the inference workers of a configuration share one GIL."""
    if config.concurrency == "processes":
        return False
    return not (config.concurrency == "async" and config.offload == "process")


def interference_kind(config: ServerConfig) -> str:
    return "threads" if gil_shared(config) else "processes"
