"""The scheduling study's theory check: simulated FIFO and SJF mean waits against
Pollaczek–Khinchine and Phipps on the *same* mixed service-time distribution.

The simulator runs the study's profile stripped to a pure queue (:func:`strip_profile`): the
models' service-time curves, input-size distributions and noise are kept; HTTP, IPC, event
loop, GIL and interference costs are removed, and there is one worker on one core.  The server
is then exactly M/G/1 with the mixed distribution ``B`` (a mixture over models and input sizes).

* FIFO: Pollaczek–Khinchine, ``W = lam E[S^2] / (2 (1 - rho))``;
* SJF with exactly known sizes (the oracle predictor): Phipps,
  ``W = W0 * integral dB(x) / (1 - rho(x))^2`` with ``W0 = lam E[S^2] / 2`` and
  ``rho(x) = lam * integral_0^x t dB(t)``.  ``B`` has no closed form here, so both formulas are
  evaluated on a large independent sample of service times drawn by the simulator's own service
  model (:func:`phipps_wait_mean` uses the empirical distribution, for which the class form
  ``W0 / ((1 - rho(x-)) (1 - rho(x)))`` is exact).

Simulated means carry a batch-means confidence interval; a check passes when the simulated
value is within 5% of theory or theory lies inside the interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from servelab.core.config import ServerConfig
from servelab.core.profile import MachineInfo, Profile
from servelab.core.workload import WorkloadSpec

REL_TOL = 0.05


def strip_profile(profile: Profile, models: Sequence[str]) -> Profile:
    """``profile``'s service-time model for ``models`` with every overhead removed, one core."""
    return Profile(
        machine=MachineInfo(cpu_model="ideal", cores=1,
                            source=f"pure queue from {profile.machine.source}"),
        models={m: replace(profile.model(m), gil_share=0.0) for m in models},
    )


def pure_config(scheduler: str) -> ServerConfig:
    """One worker, no locks, an unbounded queue: the M/G/1 server."""
    return ServerConfig(concurrency="threads", workers=1, scheduler=scheduler, model_lock="none",
                        queue_capacity=10**9, intra_op_threads=1)


def poisson_spec(spec: WorkloadSpec, rate: float, n: int, seed: int) -> WorkloadSpec:
    """``spec``'s model mix and sizes, Poisson arrivals at ``rate``, about ``n`` requests."""
    scaled = spec.scaled(rate / spec.mean_rate())
    return replace(scaled, duration=n / rate, warmup_s=0.0, seed=seed, phases=(),
                   deadline_ms={})


def service_sample(profile: Profile, spec: WorkloadSpec, n: int, seed: int) -> np.ndarray:
    """``n``-ish service times of ``spec``'s mix, drawn by the simulator's service model."""
    from servelab.sim.service import ServiceModel

    arrivals = poisson_spec(spec, 1000.0, n, seed).generate()
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7E0]))
    return np.asarray(ServiceModel(profile, pure_config("fifo"), arrivals, rng).service)


def pk_wait_mean(lam: float, samples: np.ndarray) -> float:
    from servelab.sim.theory import pk_wait_mean as pk

    s = np.asarray(samples, dtype=float)
    return pk(lam, float(s.mean()), float((s**2).mean()))


def phipps_wait_mean(lam: float, samples: np.ndarray) -> float:
    """Phipps' non-preemptive SJF mean wait for the empirical distribution of ``samples``."""
    s = np.sort(np.asarray(samples, dtype=float))
    if lam * s.mean() >= 1:
        raise ValueError(f"M/G/1 is unstable at rho={lam * s.mean():.3f}")
    w0 = lam * float((s**2).mean()) / 2
    rho = lam * np.cumsum(s) / s.size
    before = rho - lam * s / s.size
    return float(w0 * np.mean(1.0 / ((1.0 - before) * (1.0 - rho))))


@dataclass(frozen=True)
class TheoryRow:
    policy: str
    rho: float
    lam: float
    mean_service_s: float
    theory_s: float
    sim_s: float
    halfwidth_s: float
    formula: str

    @property
    def error(self) -> float:
        return self.sim_s / self.theory_s - 1

    @property
    def agrees(self) -> bool:
        return abs(self.sim_s - self.theory_s) <= max(REL_TOL * self.theory_s, self.halfwidth_s)

    def row(self) -> dict[str, Any]:
        return {**self.__dict__, "error": self.error, "agrees": self.agrees}


def theory_check(
    profile: Profile, spec: WorkloadSpec, rhos: Sequence[float] = (0.5, 0.8),
    requests: int = 60_000, seed: int = 0, sample: int = 400_000,
) -> list[TheoryRow]:
    """Simulated FIFO and oracle-SJF mean waits vs P-K and Phipps at each load ``rho``."""
    from servelab.sim.run import simulate
    from servelab.sim.stats import batch_means

    pure = strip_profile(profile, spec.models)
    s = service_sample(pure, spec, sample, seed + 1)
    es = float(s.mean())
    rows = []
    for rho in rhos:
        lam = rho / es
        wl = poisson_spec(spec, lam, requests, seed)
        for policy, scheduler, predictor, formula, theory in (
            ("fifo", "fifo", "mean", "Pollaczek-Khinchine", pk_wait_mean(lam, s)),
            ("sjf-oracle", "sjf", "oracle", "Phipps", phipps_wait_mean(lam, s)),
        ):
            rec = simulate(pure_config(scheduler), wl, pure, seed=seed, predictor=predictor).records
            waits = (rec["start"] - rec["enqueue"]).to_numpy()
            est = batch_means(waits)
            rows.append(TheoryRow(policy, rho, lam, es, theory, est.value, est.halfwidth, formula))
    return rows


def format_theory(rows: Sequence[TheoryRow]) -> str:
    lines = [f"{'policy':<11} {'rho':>4} {'lam/s':>7} {'E[S] ms':>8} {'theory ms':>10} "
             f"{'sim ms':>9} {'±CI ms':>7} {'err':>7}  formula"]
    for r in rows:
        ok = "" if r.agrees else "  DISAGREES"
        lines.append(
            f"{r.policy:<11} {r.rho:>4.2f} {r.lam:>7.2f} {r.mean_service_s * 1e3:>8.2f} "
            f"{r.theory_s * 1e3:>10.2f} {r.sim_s * 1e3:>9.2f} {r.halfwidth_s * 1e3:>7.2f} "
            f"{r.error:>+7.1%}  {r.formula}{ok}"
        )
    fifo = {r.rho: r for r in rows if r.policy == "fifo"}
    for r in rows:
        if r.policy != "fifo" and r.rho in fifo and not math.isnan(fifo[r.rho].theory_s):
            f = fifo[r.rho]
            lines.append(f"  rho {r.rho:.2f}: SJF cuts the mean wait by "
                         f"{1 - r.theory_s / f.theory_s:.0%} in theory, "
                         f"{1 - r.sim_s / f.sim_s:.0%} in simulation")
    return "\n".join(lines)
