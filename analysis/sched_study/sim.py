"""The simulated grid: each concurrency model's capacity (the completion rate of a saturated FIFO
run), a learned predictor trained on simulated FIFO traces, and every (concurrency, load,
policy) cell, the policies of a cell on common random numbers."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from servelab.analysis.sched_study.grid import STUDY_POLICIES, at_rate, study_config
from servelab.analysis.sched_study.metrics import cell_metrics, service_means, wait_rows
from servelab.core.profile import Profile
from servelab.core.workload import WorkloadSpec

log = logging.getLogger(__name__)


def mean_service(profile: Profile, spec: WorkloadSpec, seed: int = 0) -> float:
    """Noise-free mean service time of ``spec``'s requests on ``profile`` (one request alone)."""
    arr = at_rate(spec, 100.0, 200.0, 0.0, seed).generate()
    total = 0.0
    for j, name in enumerate(arr.models):
        mp = profile.model(name)
        s = arr.input_size[arr.model_idx == j].astype(float)
        total += float((mp.preprocess.evaluate(s) + mp.forward.evaluate(s)
                        + mp.postprocess.evaluate(s)).sum())
    return total / max(len(arr), 1)


def sim_capacity(profile: Profile, spec: WorkloadSpec, concurrency: str, workers: int,
                 seed: int, requests: int = 6000) -> float:
    """Completion rate of a saturated FIFO server (offered 2.5x the naive capacity)."""
    from servelab.sim.run import simulate

    guess = min(workers, profile.machine.cores) / mean_service(profile, spec, seed)
    rate = 2.5 * guess
    wl = at_rate(spec, rate, requests / rate, 0.2 * requests / rate, seed + 7)
    res = simulate(study_config(concurrency, "fifo", workers, spec.models), wl, profile, seed=seed + 7)
    return float(res.summary["throughput"])


@dataclass
class SimStudy:
    cells: pd.DataFrame
    waits: pd.DataFrame
    capacity: dict[str, float]
    predictor_mape: dict[str, float]


def train_sim_predictor(
    profile: Profile, spec: WorkloadSpec, concurrencies: Sequence[str], workers: int,
    capacity: Mapping[str, float], loads: Sequence[float], requests: int, seed: int,
) -> tuple[Any, dict[str, float]]:
    """A learned predictor trained on simulated FIFO traces (other seeds), and its held-out MAPE."""
    from threadpoolctl import threadpool_limits

    from servelab.analysis import predictor as P
    from servelab.sim.run import simulate

    frames = []
    for conc in concurrencies:
        for k, load in enumerate(loads):
            rate = load * capacity[conc]
            wl = at_rate(spec, rate, requests / rate, 0.0, seed + 1000 + k)
            cfg = study_config(conc, "fifo", workers, spec.models)
            frames.append(simulate(cfg, wl, profile, seed=seed + 1000 + k).records)
    df = P.prepare(pd.concat(frames, ignore_index=True))
    fit, held = P.split(df, 0.25, seed)
    with threadpool_limits(1):  # OpenMP barriers spin badly on a busy 2-core machine
        pred = P.train(fit, seed=seed)
    return pred, P.evaluate(pred, held)


def run_sim(
    profile: Profile, spec: WorkloadSpec, concurrencies: Sequence[str], loads: Sequence[float],
    policies: Sequence[str], workers: int, requests: int, seed: int,
    learned: Any = None,
) -> SimStudy:
    """The simulated grid (see the module docstring)."""
    from threadpoolctl import threadpool_limits

    from servelab.core.learned import Context
    from servelab.sim.run import simulate

    capacity = {c: sim_capacity(profile, spec, c, workers, seed) for c in concurrencies}
    for c, cap in capacity.items():
        log.info("sim %s: capacity %.1f req/s", c, cap)
    mape: dict[str, float] = {}
    if "sjf-learned" in policies and learned is None:
        t = time.perf_counter()
        learned, mape = train_sim_predictor(
            profile, spec, concurrencies, workers, capacity, loads, max(requests // 4, 500), seed)
        log.info("sim predictor trained in %.1f s; held-out MAPE %.1f%%",
                 time.perf_counter() - t, mape["overall"])
    ordered = ["fifo"] + [p for p in policies if p != "fifo"]
    rows, waits = [], []
    for conc in concurrencies:
        for load in loads:
            rate = load * capacity[conc]
            duration = requests / rate
            warm = 0.1 * duration
            wl = at_rate(spec, rate, duration, warm, seed)
            ref: dict[str, float] | None = None
            for policy in ordered:
                if policy != "fifo" and policy not in policies:
                    continue
                cfg = study_config(conc, policy, workers, spec.models)
                kind = STUDY_POLICIES[policy][1]
                pred: Any = kind
                if kind == "learned":
                    learned.context = Context.for_config(cfg)
                    pred = learned
                t = time.perf_counter()
                with threadpool_limits(1):  # table builds: no OpenMP spinning on a busy machine
                    rec = simulate(cfg, wl, profile, seed=seed, predictor=pred).records
                if policy == "fifo":
                    ref = service_means(rec, warm)
                if policy not in policies:
                    continue
                row = cell_metrics(rec, warm, duration, spec.models, ref)
                rows.append({"source": "sim", "concurrency": conc, "load": load, "rate": rate,
                             "capacity": capacity[conc], "policy": policy, **row,
                             "sim_wall_s": time.perf_counter() - t})
                waits.append(wait_rows(rec, warm, source="sim", concurrency=conc, load=load,
                                       policy=policy))
    return SimStudy(pd.DataFrame(rows), pd.concat(waits, ignore_index=True), capacity, mape)
