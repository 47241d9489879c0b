"""Sim-vs-live cross-check: the same configuration and workload, simulated and served for real.

For each concurrency model the check starts a live server (a subprocess), measures its capacity
(the completion rate under an open-loop overload), then at each load fraction drives it with a
Poisson workload from the load generator and simulates the same workload, seed and
configuration with the profile.  Both record sets go through one summary function, so latency
and throughput are defined identically; the error is (sim - live) / live.

``servelab crosscheck --profile P.json`` runs it; ``make demo`` runs a short one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from servelab.core.config import ServerConfig
from servelab.core.profile import Profile
from servelab.core.workload import ArrivalSpec, WorkloadSpec
from servelab.loadgen.ladder import Step

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CrosscheckPoint:
    concurrency: str
    load: float
    rate: float
    capacity: float
    live_p50_s: float
    sim_p50_s: float
    live_throughput: float
    sim_throughput: float
    live_p99_s: float
    sim_p99_s: float
    capacity_note: str = ""

    @property
    def p50_error(self) -> float:
        return _rel(self.sim_p50_s, self.live_p50_s)

    @property
    def throughput_error(self) -> float:
        return _rel(self.sim_throughput, self.live_throughput)

    def row(self) -> dict[str, Any]:
        return {**self.__dict__, "p50_error": self.p50_error,
                "throughput_error": self.throughput_error}


def _rel(sim: float, live: float) -> float:
    return (sim - live) / live if live > 0 else float("inf")


def workload(model: str, rate: float, duration: float, warmup: float, seed: int) -> WorkloadSpec:
    return WorkloadSpec(
        name=f"crosscheck-{model}", duration=duration, warmup_s=warmup, seed=seed,
        arrival=ArrivalSpec(kind="poisson", rate=rate), mix={model: 1.0},
    )


def _summary(records: pd.DataFrame, spec: WorkloadSpec) -> dict[str, Any]:
    from servelab.summary import Window, summarize

    return summarize(records, Window.of(spec)).to_dict()


def live_run(url: str, spec: WorkloadSpec, config_id: str) -> dict[str, Any]:
    from servelab.loadgen.generator import SenderOptions
    from servelab.loadgen.runner import LoadConfig, run_load

    cfg = LoadConfig(target=url, config_id=config_id, progress=False)
    run = run_load(cfg, SenderOptions(timeout=30.0), spec=spec, write=False)
    return _summary(run.records, spec)


def measure_capacity(
    url: str, model: str, guess: float, config_id: str, seed: int, step_s: float = 5.0,
) -> tuple[float, str]:
    """The server's capacity: an open-loop ladder of rates (x1.6 a step, from half the profile's
    guess; :func:`servelab.loadgen.ladder.climb`) until completions fall below 90% of the
    offered rate; the capacity is the highest completion rate seen.  On this machine the load
    generator shares the cores with the server, so the ladder also stops — and says so — when
    the generator itself falls behind (more than 2% of requests not sent)."""
    from servelab.loadgen.ladder import climb, generator_behind, saturated, step_from_summary

    def measure(rate: float) -> Step:
        return step_from_summary(rate, live_run(url, workload(model, rate, step_s, 1.0, seed),
                                                config_id))

    ladder = climb(measure, max(guess * 0.5, 1.0), up=1.6, max_steps=10, tight=1.7,
                   rules=(generator_behind(0.02), saturated(0.9)))
    return ladder.capacity, ladder.note


def crosscheck(
    profile: Profile, concurrencies: Sequence[str] = ("threads", "processes"),
    loads: Sequence[float] = (0.5, 0.8), model: str = "mobilenet_v2", workers: int | None = None,
    duration: float = 20.0, warmup: float = 3.0, variant: str = "full", seed: int = 0,
    log_dir: Path | None = None,
) -> list[CrosscheckPoint]:
    from servelab.servers.base import ServeOptions
    from servelab.servers.launch import ServerProcess
    from servelab.sim.run import simulate

    workers = workers or profile.machine.cores
    points = []
    for conc in concurrencies:
        config = ServerConfig(
            concurrency=conc, workers=workers, scheduler="fifo", models=(model,),
            model_lock="none", queue_capacity=1024,
        )
        guess = workers / profile.model(model).mean_service(
            32 if model == "mobilenet_v2" else 96
        )
        log_path = log_dir / f"server-{conc}.log" if log_dir else None
        with ServerProcess(config, ServeOptions(port=0, variant=variant), log=log_path) as srv:
            t = time.perf_counter()
            cap, how = measure_capacity(srv.url, model, guess, config.config_id, seed)
            log.info("%s: capacity %.1f req/s, %s (%.0fs)", conc, cap, how,
                     time.perf_counter() - t)
            for frac in loads:
                spec = workload(model, frac * cap, duration, warmup, seed)
                live = live_run(srv.url, spec, config.config_id)
                sim = simulate(config, spec, profile, seed=seed).summary
                points.append(CrosscheckPoint(
                    concurrency=conc, load=frac, rate=frac * cap, capacity=cap,
                    live_p50_s=live["latency_s"]["p50"], sim_p50_s=sim["latency_s"]["p50"],
                    live_throughput=live["throughput"], sim_throughput=sim["throughput"],
                    live_p99_s=live["latency_s"]["p99"], sim_p99_s=sim["latency_s"]["p99"],
                    capacity_note=how,
                ))
    return points


def format_points(points: Sequence[CrosscheckPoint]) -> str:
    notes = {p.concurrency: f"{p.capacity:.1f} req/s ({p.capacity_note})" for p in points}
    lines = [f"capacity of {k}: {v}" for k, v in notes.items()]
    lines += [f"{'server':<10} {'load':>5} {'rate/s':>7} {'p50 live':>9} {'p50 sim':>8} "
             f"{'err':>6} {'thr live':>9} {'thr sim':>8} {'err':>6}  (target |err| <= 15%)"]
    for p in points:
        lines.append(
            f"{p.concurrency:<10} {p.load:>5.0%} {p.rate:>7.1f} {p.live_p50_s * 1e3:>8.2f}m "
            f"{p.sim_p50_s * 1e3:>7.2f}m {p.p50_error:>+6.0%} {p.live_throughput:>9.1f} "
            f"{p.sim_throughput:>8.1f} {p.throughput_error:>+6.0%}"
        )
    return "\n".join(lines)
