"""``simulate(config, workload, profile, seed)``: one simulated run, its records and summary."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import simpy

from servelab.core.config import ServerConfig
from servelab.core.policies import make_policy
from servelab.core.predictor import MeanPredictor, OraclePredictor, RuntimePredictor
from servelab.core.profile import Profile, default_profile
from servelab.core.workload import WorkloadSpec
from servelab.results import records_frame
from servelab.sim.cpu import FluidCpu
from servelab.sim.frontend import FrontEnd
from servelab.sim.frontend import active as frontend_active
from servelab.sim.server import SimServer
from servelab.sim.service import ServiceModel, interference_kind
from servelab.summary import Window, summarize

log = logging.getLogger(__name__)

PREDICTORS = ("mean", "oracle")
"""``mean``: per-model running mean, seeded with the profile's expectation and learning from
completions (what a live server can do); ``oracle``: the true service time (an upper bound)."""


@dataclass
class SimResult:
    """The per-request records (shared schema) and the run's summary."""

    records: pd.DataFrame
    summary: dict[str, Any]
    config: ServerConfig
    workload: WorkloadSpec
    extras: dict[str, Any] = field(default_factory=dict)


def make_sim_predictor(
    predictor: str | RuntimePredictor | None, service: ServiceModel
) -> RuntimePredictor:
    if predictor is None or predictor == "mean":
        return MeanPredictor(priors=service.expected)
    if predictor == "oracle":
        return OraclePredictor()
    if isinstance(predictor, str):
        raise ValueError(f"unknown predictor {predictor!r}; valid: {', '.join(PREDICTORS)}")
    return predictor


def simulate(
    config: ServerConfig,
    workload: WorkloadSpec,
    profile: Profile | None = None,
    seed: int | None = None,
    predictor: str | RuntimePredictor | None = "mean",
    slo_ms: float | Mapping[str, float] | None = None,
    policy_kwargs: Mapping[str, Any] | None = None,
    noise_seed: int | None = None,
) -> SimResult:
    """Simulate ``config`` serving ``workload`` on the machine ``profile`` describes.

    ``seed`` (default: the workload's own) seeds both the arrivals and the service-time noise:
    the same seed gives identical records.  ``noise_seed`` (default: ``seed``) seeds the
    service-time noise alone, so one arrival sequence — a live run's, replayed — can be
    simulated under several draws of the noise.  ``slo_ms`` (one number, or one per model) adds SLO
    goodput to the summary.  ``policy_kwargs`` go to the queue policy (e.g. MLFQ ``quanta``).
    """
    profile = profile if profile is not None else default_profile()
    profile, kernel = profile.for_kernel(config.kernel)
    missing = [m for m in workload.models if m not in profile.models]
    if missing:
        raise ValueError(
            f"profile has no service model for {missing}; it has: {', '.join(profile.models)}"
        )
    cpu0, wall0 = time.process_time(), time.perf_counter()
    seed = workload.seed if seed is None else int(seed)
    spec = workload.with_seed(seed)
    arrivals = spec.generate()
    nseed = seed if noise_seed is None else int(noise_seed)
    rng = np.random.default_rng(np.random.SeedSequence([nseed, 0x5E4E]))
    service = ServiceModel(profile, config, arrivals, rng)
    pred = make_sim_predictor(predictor, service)
    policy = make_policy(config.scheduler, predictor=pred, **dict(policy_kwargs or {}))
    env = simpy.Environment()
    kind = interference_kind(config)
    interference = profile.interference
    table = interference.table(kind)
    slowdown = None if all(x == 1.0 for x in table) else (
        lambda k: interference.slowdown(kind, k)
    )
    inline = config.concurrency == "async" and config.offload == "inline"
    cpu = FluidCpu(
        env, profile.machine.cores, slowdown, shared_gil=service.shared_gil,
        gil_contention=profile.gil.contention_overhead, pairs=profile.gil.pair_table(),
        inference_serial="loop" if inline else None,
    )
    server = SimServer(env, config, arrivals, service, cpu, policy, pred)
    front = FrontEnd(server, cpu, profile, config, arrivals) if frontend_active(
        profile, config) else None
    server.start()
    env.run()
    server.check_finished()
    sim_cpu = time.process_time() - cpu0
    config_id = config.config_id
    records = records_frame(r.to_record(config_id) for r in server.requests)
    cpu_s = time.process_time() - cpu0
    wall_s = time.perf_counter() - wall0
    horizon = env.now
    summary = summarize(records, Window.of(spec), slo_ms=slo_ms).to_dict()
    n = len(records)
    summary.update(
        config_id=config.config_id,
        config=config.to_dict(),
        workload=spec.name,
        seed=seed,
        profile=profile.digest,
        profile_source=profile.machine.source,
        predictor=predictor if isinstance(predictor, str) else type(pred).__name__,
        cpu_utilization=cpu.utilization(horizon),
        memory_mb=profile.memory_mb(
            "processes" if not service.shared_gil else "threads",
            server.workers, list(workload.models),
        ),
        little=_little(server, records, horizon, front),
        modelled={**modelled(profile, config, front), "kernel": kernel},
        horizon_s=horizon,
        sim_cpu_s=sim_cpu,
        cpu_s=cpu_s,
        wall_s=wall_s,
        requests_per_cpu_s=n / cpu_s if cpu_s > 0 else math.inf,
    )
    return SimResult(records=records, summary=summary, config=config, workload=spec)


def modelled(profile: Profile, config: ServerConfig, front: FrontEnd | None) -> dict[str, Any]:
    """What this run modelled beyond the scheduler (so a reader knows what to trust)."""
    pairs = bool(profile.gil.pairs)
    return {
        "front_end": "measured live" if front is not None and front.fe.cpu
        else "microbenchmark overhead folded into each job",
        "client_cpu": bool(front is not None and profile.client.colocated and profile.client.cpu),
        "gil": "co-run rates" if pairs else "fluid token (GIL shares)",
        "convoy": bool(front is not None and front.convoy),
    }


def _little(
    server: SimServer, records: pd.DataFrame, horizon: float, front: FrontEnd | None = None
) -> dict[str, float]:
    """Little's law over the whole run: the simulator's own time-average number in system
    (integrated event by event) against arrival rate x mean time in system from the records."""
    accepted = records[records["status"] != "rejected"]
    if horizon <= 0 or accepted.empty:
        return {"L": 0.0, "lambda_W": 0.0, "rel_err": 0.0}
    server._occupancy(0)
    area = server.area
    if front is not None:
        front._occupancy(0)
        area += front.area
    L = area / horizon
    lam = len(accepted) / horizon
    W = float((accepted["end"] - accepted["intended_arrival"]).mean())
    lw = lam * W
    return {"L": L, "lambda_W": lw, "rel_err": abs(L - lw) / lw if lw > 0 else abs(L)}


def format_summary(summary: Mapping[str, Any]) -> str:
    """A short human-readable table of a run's summary."""
    lines = [
        f"config {summary.get('config_id', '?')}  workload {summary.get('workload', '?')}  "
        f"seed {summary.get('seed', '?')}",
        f"  offered {summary['offered_rate']:.1f} req/s  throughput {summary['throughput']:.1f} "
        f"req/s  cpu util {summary.get('cpu_utilization', math.nan):.0%}",
        "  status " + "  ".join(f"{k} {v}" for k, v in summary["status"].items()
                               if v or k != "not_sent"),
    ]
    if "goodput" in summary:
        lines.append(
            f"  goodput {summary['goodput']:.1f} req/s (SLO {summary['slo_ms']} ms, "
            f"attainment {summary['slo_attainment']:.1%})"
        )
    lat = summary["latency_s"]
    lines.append(
        f"  latency  p50 {lat['p50'] * 1e3:8.2f} ms  p99 {lat['p99'] * 1e3:8.2f} ms  "
        f"mean {lat['mean'] * 1e3:8.2f} ms   reward {summary['reward']:.2f}"
    )
    for m, s in summary["per_model"].items():
        lines.append(
            f"  {m:<18} {s['throughput']:7.1f} req/s  p50 {s['p50'] * 1e3:8.2f} ms  "
            f"p99 {s['p99'] * 1e3:8.2f} ms"
        )
    if "requests_per_cpu_s" in summary:
        lines.append(
            f"  simulated {summary['requests']} requests in {summary['cpu_s']:.2f} CPU-s "
            f"({summary['requests_per_cpu_s']:,.0f} req/CPU-s); Little: L {summary['little']['L']:.3f}"
            f" vs lambda*W {summary['little']['lambda_W']:.3f}"
        )
    return "\n".join(lines)
