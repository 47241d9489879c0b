"""The live study: per concurrency model, phase 1 (:mod:`.drive`) on a FIFO server; the learned
predictor trained on its traces (and the calibration samples); one server per policy driven at
each load; then the predictor scored again on the phase-2 requests it never saw."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from servelab.analysis.sched_study.drive import live_cell, live_phase1, warm_server
from servelab.analysis.sched_study.grid import SIM_ONLY, STUDY_POLICIES, at_rate, study_config
from servelab.analysis.sched_study.metrics import add_live_slowdown, cell_metrics, wait_rows
from servelab.analysis.sched_study.sim import sim_capacity
from servelab.core.profile import Profile
from servelab.core.workload import WorkloadSpec

log = logging.getLogger(__name__)


def training_frame(traces: pd.DataFrame, samples: Path | None, variant: str) -> pd.DataFrame:
    from servelab.analysis import predictor as P

    frames = [traces]
    if samples is not None and samples.exists():
        cal = P.calibration_traces(pd.read_parquet(samples), variant)
        if len(cal):
            log.info("adding %d calibration samples from %s", len(cal), samples)
            frames.append(cal)
    return pd.concat(frames, ignore_index=True)


@dataclass
class LiveStudy:
    cells: pd.DataFrame
    waits: pd.DataFrame
    records: pd.DataFrame
    phase1: dict[str, Any]
    predictor: dict[str, Any]


def run_live(
    profile: Profile, spec: WorkloadSpec, concurrencies: Sequence[str], loads: Sequence[float],
    policies: Sequence[str], workers: int, out: Path, duration: float, warmup: float,
    step_s: float, variant: str, seed: int, predictor_path: Path | None = None,
    capacity: float | None = None, samples: Path | None = None, warm_s: float = 4.0,
) -> LiveStudy:
    from threadpoolctl import threadpool_limits

    from servelab.analysis import predictor as P
    from servelab.core import learned
    from servelab.core.learned import Context
    from servelab.results import write_parquet
    from servelab.servers.base import ServeOptions
    from servelab.servers.launch import ServerProcess

    bad = [p for p in policies if p in SIM_ONLY]
    if bad:
        raise ValueError(f"{bad}: the oracle needs a request's true service time before it runs; "
                         "live servers cannot know it (simulation only)")
    rows, waits, recs = [], [], []
    phase1: dict[str, Any] = {}
    pinfo: dict[str, Any] = {}
    for conc in concurrencies:
        cfg = study_config(conc, "fifo", workers, spec.models)
        guess = capacity or sim_capacity(profile, spec, conc, workers, seed)
        t = time.perf_counter()
        with ServerProcess(cfg, ServeOptions(port=0, variant=variant),
                           log=out / f"server-{conc}-phase1.log") as srv:
            warm_server(srv, spec, 0.3 * guess, cfg.config_id, warm_s, seed)
            p1 = live_phase1(srv, spec, cfg.config_id, guess, step_s, seed, capacity)
        write_parquet(out / "traces" / f"phase1-{conc}.parquet", p1.traces)
        phase1[conc] = {"capacity": p1.capacity, "note": p1.note, "steps": p1.steps,
                        "wall_s": time.perf_counter() - t}
        log.info("live %s: capacity %.1f req/s (%s)", conc, p1.capacity, p1.note)
        path = predictor_path
        if "sjf-learned" in policies and path is None:
            path = out / f"predictor-{conc}.joblib"
            df = P.prepare(training_frame(p1.traces, samples, variant))
            fit, held = P.split(df, 0.25, seed)
            t = time.perf_counter()
            with threadpool_limits(1):
                pred = P.train(fit, seed=seed)
            learned.save(pred, path)
            pinfo[conc] = {"path": str(path), "train_rows": len(fit), "held_out_rows": len(held),
                           "train_s": time.perf_counter() - t,
                           "held_out_mape": P.evaluate(pred, held)}
            ctx = Context.for_config(study_config(conc, "sjf-learned", workers, spec.models))
            with threadpool_limits(1):
                pinfo[conc]["us_per_prediction"] = P.prediction_cost_us(learned.load(path, ctx), held)
        for policy in policies:
            cfg = study_config(conc, policy, workers, spec.models)
            opts = ServeOptions(port=0, variant=variant, predictor=(
                str(path) if STUDY_POLICIES[policy][1] == "learned" and path else "mean"))
            with ServerProcess(cfg, opts, log=out / f"server-{conc}-{policy}.log") as srv:
                warm_server(srv, spec, 0.3 * p1.capacity, cfg.config_id, warm_s, seed)
                for load in loads:
                    rate = load * p1.capacity
                    wl = at_rate(spec, rate, duration, warmup, seed)
                    t = time.perf_counter()
                    rec, client = live_cell(srv, wl, cfg.config_id)
                    rec = rec.assign(concurrency=conc, load=load, policy=policy)
                    recs.append(rec)
                    lat, gen = client["latency_s"], client["generator"]
                    rows.append({
                        "source": "live", "concurrency": conc, "load": load, "rate": rate,
                        "capacity": p1.capacity, "policy": policy,
                        **cell_metrics(rec, warmup, duration, spec.models),
                        "preemptions": int(rec.loc[rec["enqueue"] >= warmup, "preemptions"]
                                           .sum()) if "preemptions" in rec else 0,
                        "client_p50_ms": lat["p50"] * 1e3,
                        "client_p99_ms": lat["p99"] * 1e3,
                        "client_not_sent": gen["counts"]["not_sent"],
                        "client_timeout": gen["counts"]["timeout"],
                        "lag_p99_ms": gen["lag_s"]["p99"] * 1e3,
                        "wall_s": time.perf_counter() - t,
                    })
                    waits.append(wait_rows(rec, warmup, source="live", concurrency=conc,
                                           load=load, policy=policy))
                    log.info("live %s %s %.0f%%: mean wait %.1f ms", conc, policy, load * 100,
                             rows[-1]["wait_mean"] * 1e3)
        # The learned predictor, scored on the phase-2 requests (collected after training).
        if path is not None and recs:
            own = pd.concat([r for r in recs if r["concurrency"].iloc[0] == conc and
                             r["policy"].iloc[0] != "mlfq"], ignore_index=True)
            if len(own):
                ctx = Context.for_config(study_config(conc, "sjf-learned", workers, spec.models))
                pinfo.setdefault(conc, {"path": str(path)})
                pinfo[conc]["phase2_rows"] = int(len(P.prepare(own)))
                pinfo[conc]["phase2_mape"] = P.evaluate(learned.load(path, ctx), own)
                pinfo[conc]["phase2_mape_floor"] = P.mape_floor(own)
                with threadpool_limits(1):
                    pinfo[conc]["phase2_us_per_prediction"] = P.prediction_cost_us(
                        learned.load(path, ctx), own)
                    pinfo[conc]["phase2_us_per_prediction_warm"] = P.prediction_cost_us(
                        learned.load(path, ctx), own, warm=True)
    cells = pd.DataFrame(rows)
    cells = add_live_slowdown(cells, spec.models)
    return LiveStudy(cells, pd.concat(waits, ignore_index=True) if waits else pd.DataFrame(),
                     pd.concat(recs, ignore_index=True) if recs else pd.DataFrame(),
                     phase1, pinfo)
