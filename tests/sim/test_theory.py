"""Ground truth: the simulator against queueing theory, at rho = 0.5 and 0.8.

Each run uses a 'pure queue' profile (no overheads, no GIL, no interference), so the simulated
server is exactly the textbook queue.  A check passes when the simulated value is within 3% of
theory or theory lies inside the 95% batch-means confidence interval — and, so that a loose
interval cannot pass a wrong model, the interval's half-width must itself be under 10% of the
theoretical value (15% for the p99).  Seeds are fixed: the outcome is deterministic.  Run with
``-s`` to see the table of simulated vs theoretical values.

Sample sizes come from that precision requirement, not the other way round.  A check's
relative half-width shrinks as ``K / sqrt(n)``; :data:`SPREAD` holds ``K`` for the widest check
of each run (measured: the mean over seeds 1-5), and :func:`sized` gives each run the requests
that put its expected half-width at 60% of the cap (:data:`PRECISION`), leaving room for the
interval's own noise (30 batches: about ±13%).  At those sizes a wrong formula still fails
every check by a wide margin (M/M/1 with one fast server for M/M/2, the exponential's or a
constant's second moment for the gamma's, FIFO's waits for Cobham's classes and for SJF, FIFO's
sojourn for processor sharing: 7-145% off), and so does each test when the simulated service
times run 3% long or 2% short.

rho = 0.9 is not run: it checks the same formulas through the same code as rho = 0.8; its
relaxation time is ~4x longer, so the same relative precision takes ~3x the requests; and a
service-time bias, though amplified more by the higher load, is resolved no better per request
(the interval widens as fast as the amplification grows).

The module's ``runs`` fixture starts every selected test's simulation at once on a pool of
worker processes, one per core up to the suite's two; each test then checks its own run.  Each
run is exactly the one the test would make itself (same configuration, workload, profile and
seed), so the numbers are the same: only the wall time halves.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import site
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from servelab.core.config import ServerConfig
from servelab.core.profile import queueing_profile
from servelab.core.workload import ArrivalSpec, SizeDist, WorkloadSpec
from servelab.sim import theory
from servelab.sim.run import simulate
from servelab.sim.stats import Estimate, batch_means, batch_quantile

RHOS = (0.5, 0.8)
MAX_HALFWIDTH = 0.10
MAX_HALFWIDTH_QUANTILE = 0.15  # a tail quantile converges more slowly than a mean
PRECISION = 0.6
"""Each run's expected half-width, as a share of the cap (see the module docstring)."""

SPREAD: dict[str, dict[float, float]] = {
    "mmc": {0.5: 16.5, 0.8: 25.0},  # E[W] (the p99, 18 and 31, is further under its 15% cap)
    "pk": {0.5: 8.5, 0.8: 16.4},
    "cobham": {0.5: 18.8, 0.8: 31.0},  # class lo, over the run's requests (all classes)
    "sjf": {0.5: 9.1, 0.8: 12.2},
    "ps": {0.5: 6.8, 0.8: 23.9},
}
"""K = relative 95% half-width x sqrt(requests) of each run's widest check (relative to its
cap), the mean over seeds 1-5."""


def sized(spread: float, cap: float = MAX_HALFWIDTH) -> int:
    """The requests that put a check of spread ``K`` at ``PRECISION`` of ``cap`` (in 5000s)."""
    return 5000 * math.ceil((spread / (PRECISION * cap)) ** 2 / 5000)


REQUESTS = {run: {rho: sized(k) for rho, k in by_rho.items()} for run, by_rho in SPREAD.items()}


def workload(rate: float, n: int, mix: dict[str, float], priorities=None, seed: int = 1):
    return WorkloadSpec(
        name="poisson", duration=n / rate, arrival=ArrivalSpec(kind="poisson", rate=rate),
        mix=mix, sizes={m: SizeDist() for m in mix}, priorities=priorities or {}, seed=seed,
    )


def config(**kw) -> ServerConfig:
    base = {"model_lock": "none", "queue_capacity": 10**9}
    base.update(kw)
    return ServerConfig(**base)


def check(what: str, est: Estimate, truth: float, max_halfwidth: float = MAX_HALFWIDTH) -> None:
    err = (est.value / truth - 1) * 100
    print(f"{what:<34} sim {est.value:9.4f} ± {est.halfwidth:7.4f}  theory {truth:9.4f}"
          f"  err {err:+6.2f}%  CI ±{est.halfwidth / truth:5.1%}")
    assert est.halfwidth <= max_halfwidth * truth, f"{what}: CI ±{est.halfwidth:.3g} too wide"
    assert est.agrees(truth), f"{what}: simulated {est} vs theory {truth:.4g} ({err:+.2f}%)"


@dataclass
class Run:
    """What a test reads of one simulated run: its records' timing columns and its summary."""

    records: pd.DataFrame
    summary: dict[str, Any]


def waits(res: Run, model: str | None = None) -> np.ndarray:
    rec = res.records
    if model is not None:
        rec = rec[rec["model"] == model]
    return (rec["start"] - rec["enqueue"]).to_numpy()


def assert_little(res: Run) -> None:
    assert res.summary["little"]["rel_err"] < 1e-9, res.summary["little"]


# --- the runs: one builder per test, (rho) -> simulate()'s arguments ---------------------------

def mmc_run(rho: float) -> dict[str, Any]:
    c, mu = 2, 1.0
    return dict(config=config(workers=c, models=("a",)),
                workload=workload(rho * c * mu, REQUESTS["mmc"][rho], {"a": 1.0}),
                profile=queueing_profile({"a": 1 / mu}, cores=c))


def pk_run(rho: float) -> dict[str, Any]:
    # Gamma service, CV 0.5 (E[S^2] = 1.25 E[S]^2): not exponential, so this checks the
    # second-moment dependence rather than M/M/1 again.
    return dict(config=config(workers=1, models=("a",)),
                workload=workload(rho, REQUESTS["pk"][rho], {"a": 1.0}),
                profile=queueing_profile({"a": (1.0, "gamma", 0.5)}, cores=1))


# Three classes with different exponential service means; the class is the workload's
# per-model priority (lower = served first).
COBHAM_MEANS = {"hi": 0.5, "mid": 1.0, "lo": 2.0}
COBHAM_SHARE = {"hi": 0.5, "mid": 0.3, "lo": 0.2}


def cobham_rate(rho: float) -> float:
    return rho / sum(COBHAM_SHARE[m] * COBHAM_MEANS[m] for m in COBHAM_MEANS)


def cobham_run(rho: float) -> dict[str, Any]:
    return dict(config=config(workers=1, scheduler="priority", models=tuple(COBHAM_MEANS)),
                # The lowest class sees the longest, most variable waits: it sizes the run.
                workload=workload(cobham_rate(rho), REQUESTS["cobham"][rho], COBHAM_SHARE,
                                  priorities={"hi": 0, "mid": 1, "lo": 2}),
                profile=queueing_profile(COBHAM_MEANS, cores=1))


def sjf_run(rho: float) -> dict[str, Any]:
    # Non-preemptive SJF on exactly known (oracle) exponential service times.
    return dict(config=config(workers=1, scheduler="sjf", models=("a",)),
                workload=workload(rho, REQUESTS["sjf"][rho], {"a": 1.0}),
                profile=queueing_profile({"a": 1.0}, cores=1), predictor="oracle")


def ps_run(rho: float) -> dict[str, Any]:
    # Processor sharing as the OS does it: unlimited worker threads time-slicing one core.
    # Log-normal service with CV 1.5: PS is insensitive to the distribution beyond its mean.
    return dict(config=config(workers=10_000, models=("a",)),
                workload=workload(rho, REQUESTS["ps"][rho], {"a": 1.0}),
                profile=queueing_profile({"a": (1.0, "lognormal", 1.5)}, cores=1))


BUILDERS: dict[str, tuple[str, Callable[[float], dict[str, Any]]]] = {
    "test_mmc_wait_mean_and_p99_erlang_c": ("mmc", mmc_run),
    "test_mg1_wait_mean_pollaczek_khinchine": ("pk", pk_run),
    "test_mg1_nonpreemptive_priority_cobham": ("cobham", cobham_run),
    "test_mg1_sjf_phipps": ("sjf", sjf_run),
    "test_mg1_processor_sharing": ("ps", ps_run),
}
COLUMNS = ["model", "intended_arrival", "enqueue", "start", "end", "status"]


def run_one(test: str, rho: float) -> Run:
    """One test's simulation (in a pool worker): its timing columns and summary."""
    res = simulate(**BUILDERS[test][1](rho))
    rec = res.records[COLUMNS].astype({"model": "category", "status": "category"})
    return Run(rec, res.summary)


def cost(key: tuple[str, float]) -> float:
    test, rho = key
    return REQUESTS[BUILDERS[test][0]][rho]


@pytest.fixture(scope="module")
def runs(request) -> Callable[[str, float], Run]:
    """Starts the selected tests' runs, longest first, on up to two worker processes (fresh
    interpreters: no torch thread state forked from earlier tests); ``runs(test, rho)`` waits
    for one."""
    keys = sorted(
        {(item.originalname, item.callspec.params["rho"]) for item in request.session.items
         if item.module is request.module and item.originalname in BUILDERS},
        key=cost, reverse=True)
    # Workers import this module as tests.sim.test_theory: the repository root goes on their
    # path (site.addsitedir pickles by name; a bound sys.path.insert would pickle a copy).
    root = str(Path(__file__).resolve().parents[2])
    pool = ProcessPoolExecutor(
        max_workers=max(1, min(2, os.cpu_count() or 1, len(keys))),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=site.addsitedir, initargs=(root,))
    futures: dict[tuple[str, float], Future[Run]] = {k: pool.submit(run_one, *k) for k in keys}

    def get(test: str, rho: float) -> Run:
        key = (test, rho)
        if key not in futures:  # not selected at collection (e.g. called by hand)
            futures[key] = pool.submit(run_one, *key)
        return futures.pop(key).result()

    yield get
    pool.shutdown(wait=False, cancel_futures=True)


@pytest.mark.parametrize("rho", RHOS)
def test_mmc_wait_mean_and_p99_erlang_c(rho, runs):
    c, mu = 2, 1.0
    lam = rho * c * mu
    res = runs("test_mmc_wait_mean_and_p99_erlang_c", rho)
    assert (res.records["status"] == "ok").all()
    w = waits(res)
    check(f"M/M/{c} E[W] rho={rho}", batch_means(w), theory.mmc_wait_mean(lam, mu, c))
    check(f"M/M/{c} p99(W) rho={rho}", batch_quantile(w, 0.99),
          theory.mmc_wait_quantile(lam, mu, c, 0.99), MAX_HALFWIDTH_QUANTILE)
    assert_little(res)


@pytest.mark.parametrize("rho", RHOS)
def test_mg1_wait_mean_pollaczek_khinchine(rho, runs):
    res = runs("test_mg1_wait_mean_pollaczek_khinchine", rho)  # gamma service, CV 0.5
    truth = theory.pk_wait_mean(rho, 1.0, theory.second_moment(1.0, "gamma", 0.5))
    check(f"M/G/1 E[W] (P-K) rho={rho}", batch_means(waits(res)), truth)
    assert_little(res)


@pytest.mark.parametrize("rho", RHOS)
def test_mg1_nonpreemptive_priority_cobham(rho, runs):
    means, share, lam = COBHAM_MEANS, COBHAM_SHARE, cobham_rate(rho)
    res = runs("test_mg1_nonpreemptive_priority_cobham", rho)
    truths = theory.cobham_waits(
        [lam * share[m] for m in means], list(means.values()),
        [theory.second_moment(means[m], "exponential", 1.0) for m in means],
    )
    for m, truth in zip(means, truths, strict=True):
        check(f"Cobham E[W] class {m} rho={rho}", batch_means(waits(res, m)), truth)
    assert_little(res)


@pytest.mark.parametrize("rho", RHOS)
def test_mg1_sjf_phipps(rho, runs):
    res = runs("test_mg1_sjf_phipps", rho)  # oracle predictor, exponential service
    truth = theory.sjf_wait_mean_exponential(rho, 1.0)
    check(f"M/G/1 SJF E[W] (Phipps) rho={rho}", batch_means(waits(res)), truth)
    # SJF must beat FIFO's P-K wait, by a margin that grows with load.
    assert truth < theory.pk_wait_mean(rho, 1.0, 2.0)
    assert_little(res)


@pytest.mark.parametrize("rho", RHOS)
def test_mg1_processor_sharing(rho, runs):
    res = runs("test_mg1_processor_sharing", rho)  # 10,000 workers on one core, lognormal CV 1.5
    rec = res.records
    sojourn = (rec["end"] - rec["intended_arrival"]).to_numpy()
    check(f"M/G/1-PS E[T] rho={rho}", batch_means(sojourn), theory.ps_sojourn_mean(rho, 1.0))
    assert_little(res)


def test_theory_helpers_agree_with_known_values():
    # M/M/1 special cases of the general formulas.
    assert theory.erlang_c(1, 0.8) == pytest.approx(0.8)
    assert theory.mmc_wait_mean(0.8, 1.0, 1) == pytest.approx(4.0)
    assert theory.pk_wait_mean(0.8, 1.0, 2.0) == pytest.approx(4.0)
    assert theory.cobham_waits([0.8], [1.0], [2.0]) == pytest.approx([4.0])
    # Phipps with the generic integral equals the closed form.
    generic = theory.sjf_wait_mean(0.8, lambda x: math.exp(-x), 2.0)
    assert generic == pytest.approx(theory.sjf_wait_mean_exponential(0.8, 1.0), rel=1e-6)
    # Erlang C for c = 2, a = 1: 1/3.
    assert theory.erlang_c(2, 1.0) == pytest.approx(1 / 3)
