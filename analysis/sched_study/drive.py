"""Driving one live server: a cell (a load-generator run and the server's own trace of its
requests, in run-relative times), the unrecorded warm-up of a fresh server, and phase 1's
rising ladder of rates (the traces that train the predictor, and the capacity)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd

from servelab.analysis.sched_study.grid import at_rate
from servelab.analysis.sched_study.metrics import cell_metrics
from servelab.core.workload import WorkloadSpec

log = logging.getLogger(__name__)


def shift_records(rec: pd.DataFrame) -> pd.DataFrame:
    """Server-trace records with times relative to the run's first arrival."""
    if rec.empty:
        return rec
    t0 = float(rec["intended_arrival"].min())
    return rec.assign(**{c: rec[c] - t0 for c in ("intended_arrival", "enqueue", "start", "end")})


def live_cell(srv: Any, spec: WorkloadSpec, config_id: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Drive a live server with ``spec``; its own trace of these requests (run-relative times)
    and the load generator's summary."""
    from servelab.loadgen.generator import SenderOptions
    from servelab.loadgen.runner import LoadConfig, run_load
    from servelab.results import records_frame

    n0 = int(srv.get("/servelab/stats")["records"])
    cfg = LoadConfig(target=srv.url, config_id=config_id, progress=False)
    run = run_load(cfg, SenderOptions(timeout=60.0), spec=spec, write=False)
    trace = srv.get("/servelab/trace")[n0:]
    return shift_records(records_frame(trace)), run.summary


def warm_server(srv: Any, spec: WorkloadSpec, rate: float, config_id: str, seconds: float,
                seed: int) -> None:
    """A short unrecorded run, so that no measured cell pays for a fresh server's first
    inferences (lazy initialisation, allocator growth)."""
    if seconds > 0:
        live_cell(srv, at_rate(spec, rate, seconds, 0.0, seed + 900), config_id)


@dataclass
class LivePhase1:
    capacity: float
    note: str
    traces: pd.DataFrame
    steps: list[dict[str, Any]]


def live_phase1(
    srv: Any, spec: WorkloadSpec, config_id: str, guess: float, step_s: float, seed: int,
    capacity: float | None = None, max_steps: int = 7,
) -> LivePhase1:
    """Traces for the predictor and the capacity: a FIFO server driven at a rising ladder of
    rates (:func:`servelab.loadgen.ladder.climb`: x1.3 a step from 0.4x ``guess``, the
    simulated capacity) up to the first step whose completions fall below 90% of the offered
    rate (or the load generator falls behind); the capacity is the highest completion rate
    seen.  With ``capacity`` given, three steps at 0.5, 0.8 and 1.0 of it (traces only)."""
    from servelab.loadgen.ladder import Step, climb, generator_behind, saturated

    traces: list[pd.DataFrame] = []
    steps: list[dict[str, Any]] = []

    def measure(rate: float) -> Step:
        k = len(steps)
        wl = at_rate(spec, rate, step_s, min(1.0, step_s / 4), seed + 500 + k)
        rec, client = live_cell(srv, wl, config_id)
        s = cell_metrics(rec, wl.warmup_s, wl.total_duration, spec.models)
        traces.append(rec.assign(step=k, rate=rate))
        gen = client["generator"]
        not_sent = gen["counts"]["not_sent"] / max(gen["scheduled"], 1)
        steps.append({"rate": rate, "throughput": s["throughput"], "wait_mean": s["wait_mean"],
                      "not_sent": not_sent})
        log.info("phase 1: %.1f req/s offered -> %.1f completed, mean wait %.0f ms",
                 rate, s["throughput"], s["wait_mean"] * 1e3)
        return Step(rate=rate, offered=s["offered"], throughput=s["throughput"],
                    not_sent=not_sent)

    if capacity:
        for f in (0.5, 0.8, 1.0):
            measure(f * capacity)
        return LivePhase1(capacity, f"given: {capacity:.1f} req/s",
                          pd.concat(traces, ignore_index=True), steps)
    ladder = climb(measure, 0.4 * guess, up=1.3, max_steps=max_steps, bisect=0,
                   rules=(generator_behind(0.02), saturated(0.9)))
    return LivePhase1(ladder.capacity, ladder.note, pd.concat(traces, ignore_index=True), steps)
