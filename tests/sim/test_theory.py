"""Ground truth: the simulator against queueing theory, at rho = 0.5, 0.8 and 0.9.

Each run uses a 'pure queue' profile (no overheads, no GIL, no interference), so the simulated
server is exactly the textbook queue.  A check passes when the simulated value is within 3% of
theory or theory lies inside the 95% batch-means confidence interval — and, so that a loose
interval cannot pass a wrong model, the interval's half-width must itself be under 10% of the
theoretical value (15% for the p99).  Seeds are fixed: the outcome is deterministic.  Run with
``-s`` to see the table of simulated vs theoretical values.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from servelab.core.config import ServerConfig
from servelab.core.profile import queueing_profile
from servelab.core.workload import ArrivalSpec, SizeDist, WorkloadSpec
from servelab.sim import theory
from servelab.sim.run import SimResult, simulate
from servelab.sim.stats import Estimate, batch_means, batch_quantile

RHOS = (0.5, 0.8, 0.9)
REQUESTS = {0.5: 100_000, 0.8: 250_000, 0.9: 500_000}
MAX_HALFWIDTH = 0.10
MAX_HALFWIDTH_QUANTILE = 0.15  # a tail quantile converges more slowly than a mean


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


def waits(res: SimResult, model: str | None = None) -> np.ndarray:
    rec = res.records
    if model is not None:
        rec = rec[rec["model"] == model]
    return (rec["start"] - rec["enqueue"]).to_numpy()


def assert_little(res: SimResult) -> None:
    assert res.summary["little"]["rel_err"] < 1e-9, res.summary["little"]


@pytest.mark.parametrize("rho", RHOS)
def test_mmc_wait_mean_and_p99_erlang_c(rho):
    c, mu = 2, 1.0
    lam = rho * c * mu
    res = simulate(
        config(workers=c, models=("a",)), workload(lam, REQUESTS[rho], {"a": 1.0}),
        queueing_profile({"a": 1 / mu}, cores=c),
    )
    assert (res.records["status"] == "ok").all()
    w = waits(res)
    check(f"M/M/{c} E[W] rho={rho}", batch_means(w), theory.mmc_wait_mean(lam, mu, c))
    check(f"M/M/{c} p99(W) rho={rho}", batch_quantile(w, 0.99),
          theory.mmc_wait_quantile(lam, mu, c, 0.99), MAX_HALFWIDTH_QUANTILE)
    assert_little(res)


@pytest.mark.parametrize("rho", RHOS)
def test_mg1_wait_mean_pollaczek_khinchine(rho):
    # Gamma service, CV 0.5 (E[S^2] = 1.25 E[S]^2): not exponential, so this checks the
    # second-moment dependence rather than M/M/1 again.
    dist, cv = "gamma", 0.5
    res = simulate(
        config(workers=1, models=("a",)), workload(rho, REQUESTS[rho], {"a": 1.0}),
        queueing_profile({"a": (1.0, dist, cv)}, cores=1),
    )
    truth = theory.pk_wait_mean(rho, 1.0, theory.second_moment(1.0, dist, cv))
    check(f"M/G/1 E[W] (P-K) rho={rho}", batch_means(waits(res)), truth)
    assert_little(res)


@pytest.mark.parametrize("rho", RHOS)
def test_mg1_nonpreemptive_priority_cobham(rho):
    # Three classes with different exponential service means; the class is the workload's
    # per-model priority (lower = served first).
    means = {"hi": 0.5, "mid": 1.0, "lo": 2.0}
    share = {"hi": 0.5, "mid": 0.3, "lo": 0.2}
    lam = rho / sum(share[m] * means[m] for m in means)
    res = simulate(
        config(workers=1, scheduler="priority", models=tuple(means)),
        # The lowest class sees the longest, most variable waits: half again as many requests.
        workload(lam, REQUESTS[rho] * 3 // 2, share, priorities={"hi": 0, "mid": 1, "lo": 2}),
        queueing_profile(means, cores=1),
    )
    truths = theory.cobham_waits(
        [lam * share[m] for m in means], list(means.values()),
        [theory.second_moment(means[m], "exponential", 1.0) for m in means],
    )
    for m, truth in zip(means, truths, strict=True):
        check(f"Cobham E[W] class {m} rho={rho}", batch_means(waits(res, m)), truth)
    assert_little(res)


@pytest.mark.parametrize("rho", RHOS)
def test_mg1_sjf_phipps(rho):
    # Non-preemptive SJF on exactly known (oracle) exponential service times.
    res = simulate(
        config(workers=1, scheduler="sjf", models=("a",)), workload(rho, REQUESTS[rho], {"a": 1.0}),
        queueing_profile({"a": 1.0}, cores=1), predictor="oracle",
    )
    truth = theory.sjf_wait_mean_exponential(rho, 1.0)
    check(f"M/G/1 SJF E[W] (Phipps) rho={rho}", batch_means(waits(res)), truth)
    # SJF must beat FIFO's P-K wait, by a margin that grows with load.
    assert truth < theory.pk_wait_mean(rho, 1.0, 2.0)
    assert_little(res)


@pytest.mark.parametrize("rho", RHOS)
def test_mg1_processor_sharing(rho):
    # Processor sharing as the OS does it: unlimited worker threads time-slicing one core.
    # Log-normal service with CV 1.5: PS is insensitive to the distribution beyond its mean.
    res = simulate(
        config(workers=10_000, models=("a",)), workload(rho, REQUESTS[rho], {"a": 1.0}),
        queueing_profile({"a": (1.0, "lognormal", 1.5)}, cores=1),
    )
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
