"""``servelab sched-study``: FIFO vs Priority vs SJF vs MLFQ, simulated and live
(:mod:`servelab.analysis.sched_study` does the work; this module parses, writes and prints)."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from servelab.analysis.sched_study.grid import LIVE_DEFAULT, SIM_ONLY, STUDY_POLICIES
from servelab.analysis.sched_study.live import run_live
from servelab.analysis.sched_study.report import format_cells, format_targets, plot_waits, targets
from servelab.analysis.sched_study.sim import run_sim
from servelab.core.config import CONCURRENCY
from servelab.core.profile import load_profile

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", help="calibrated profile (default: the design-doc profile)")
    parser.add_argument("--workload", default="mixed", help="shipped workload name or file")
    parser.add_argument("--loads", nargs="+", type=float, default=[0.5, 0.8, 0.95],
                        help="fractions of each configuration's capacity")
    parser.add_argument("--workers", type=int, default=2, help="workers per server")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="results folder (default: results/sched-study-*)")
    g = parser.add_argument_group("simulation")
    g.add_argument("--no-sim", action="store_true", help="skip the simulated grid")
    g.add_argument("--sim-concurrency", nargs="+", default=list(CONCURRENCY), choices=CONCURRENCY)
    g.add_argument("--sim-policies", nargs="+", default=list(STUDY_POLICIES), choices=list(STUDY_POLICIES))
    g.add_argument("--sim-requests", type=int, default=20000, help="simulated requests per cell")
    g.add_argument("--theory-requests", type=int, default=60000,
                   help="requests per theory-check run (0 = skip the check)")
    g = parser.add_argument_group("live")
    g.add_argument("--no-live", action="store_true", help="skip the live servers")
    g.add_argument("--live-concurrency", nargs="+", default=["threads"], choices=CONCURRENCY)
    g.add_argument("--live-policies", nargs="+", default=list(LIVE_DEFAULT),
                   choices=[p for p in STUDY_POLICIES if p not in SIM_ONLY])
    g.add_argument("--live-duration", type=float, default=30.0, help="seconds per live cell")
    g.add_argument("--live-warmup", type=float, default=5.0,
                   help="seconds at the start of each live cell left out of the metrics")
    g.add_argument("--trace-step", type=float, default=8.0,
                   help="seconds per phase-1 step (traces and capacity ladder)")
    g.add_argument("--server-warmup", type=float, default=4.0,
                   help="seconds of unrecorded load on each fresh server before measuring")
    g.add_argument("--live-capacity", type=float,
                   help="skip the capacity ladder: use this many req/s as the capacity")
    g.add_argument("--predictor", type=Path,
                   help="use this learned predictor for sjf-learned instead of training one")
    g.add_argument("--calibration-samples", type=Path,
                   help="extra training data (default: <profile>.samples.parquet if present)")
    g.add_argument("--variant", default="full", choices=("full", "tiny"), help="live model size")


def command_line(args: argparse.Namespace) -> str:
    """The ``servelab sched-study`` command that reproduces ``args`` (defaults left out)."""
    from servelab.reproduce import command_line as line

    return line("sched-study", add_arguments, args, omit=("out",))


def _json_cells(cells: pd.DataFrame) -> list[dict[str, Any]]:
    return [] if cells.empty else cells.replace({np.nan: None}).to_dict("records")


def run(args: argparse.Namespace) -> int:
    from servelab.reproduce import run_metadata
    from servelab.results import new_run_dir, write_json, write_parquet
    from servelab.workloads import load_workload

    t_start = time.perf_counter()
    profile = load_profile(args.profile)
    spec = load_workload(args.workload)
    models = list(spec.models)
    out = args.out or new_run_dir("sched-study")
    out.mkdir(parents=True, exist_ok=True)
    cmd = command_line(args)
    summary: dict[str, Any] = {
        **run_metadata(cmd), "profile": args.profile or "(design-doc default)",
        "profile_source": profile.machine.source, "workload": spec.to_dict(),
        "definitions": {
            "wait": "start - enqueue (time to first service), ok requests after the warm-up",
            "starvation": "longest wait of the class with the highest mean wait",
            "jain": "Jain's index over per-class mean slowdown = mean sojourn / mean service "
                    "time (service measured in the FIFO run of the same cell)",
            "throughput": "completions inside the measured window per second",
        },
    }
    waits = []
    if args.theory_requests:
        from servelab.analysis.sched_study.theory import format_theory, theory_check

        t = time.perf_counter()
        rows = theory_check(profile, spec, (0.5, 0.8), args.theory_requests, args.seed)
        print("Theory check: M/G/1 on the mixed service-time distribution (no overheads)")
        print(format_theory(rows))
        write_parquet(out / "theory.parquet", pd.DataFrame([r.row() for r in rows]))
        summary["theory"] = [r.row() for r in rows]
        summary["theory_wall_s"] = time.perf_counter() - t
        print()
    if not args.no_sim:
        t = time.perf_counter()
        learned = None
        if args.predictor is not None and "sjf-learned" in args.sim_policies:
            from servelab.core.learned import load

            learned = load(args.predictor)
        sim = run_sim(profile, spec, args.sim_concurrency, args.loads, args.sim_policies,
                      args.workers, args.sim_requests, args.seed, learned)
        write_parquet(out / "sim.parquet", sim.cells)
        waits.append(sim.waits)
        summary["sim"] = {"capacity": sim.capacity, "predictor_held_out_mape": sim.predictor_mape,
                          "cells": _json_cells(sim.cells), "targets": targets(sim.cells, models),
                          "wall_s": time.perf_counter() - t}
        print(f"Simulation ({args.sim_requests} requests per cell, profile: "
              f"{profile.machine.source})")
        if sim.predictor_mape:
            print("  simulated learned predictor, held-out MAPE: " + ", ".join(
                f"{k} {v:.1f}%" for k, v in sim.predictor_mape.items()))
        print(format_cells(sim.cells, models))
        print(format_targets(summary["sim"]["targets"]))
        print()
        write_json(out / "summary.json", summary)
    if not args.no_live:
        t = time.perf_counter()
        samples = args.calibration_samples
        if samples is None and args.profile:
            samples = Path(args.profile).with_suffix(".samples.parquet")
        live = run_live(
            profile, spec, args.live_concurrency, args.loads, args.live_policies, args.workers,
            out, args.live_duration, args.live_warmup, args.trace_step, args.variant, args.seed,
            args.predictor, args.live_capacity, samples, args.server_warmup,
        )
        write_parquet(out / "live.parquet", live.cells)
        if not live.records.empty:
            write_parquet(out / "live_records.parquet", live.records)
        waits.append(live.waits)
        summary["live"] = {"phase1": live.phase1, "predictor": live.predictor,
                           "cells": _json_cells(live.cells),
                           "targets": targets(live.cells, models),
                           "wall_s": time.perf_counter() - t}
        print(f"Live ({args.variant} models, {args.live_duration:g} s per cell, waits from the "
              "servers' traces)")
        for conc, p in live.phase1.items():
            print(f"  {conc}: capacity {p['capacity']:.1f} req/s ({p['note']})")
        for conc, p in live.predictor.items():
            for key, label in (("held_out_mape", "phase-1 held-out"),
                               ("phase2_mape", "phase-2 requests (never seen in training)"),
                               ("phase2_mape_floor", "phase-2, floor: best constant per "
                                "(model, size, batch) fitted on them")):
                if key in p:
                    print(f"  learned predictor ({conc}), MAPE on {label}: " + ", ".join(
                        f"{k} {v:.1f}%" for k, v in p[key].items()))
            for key, label in (("us_per_prediction", "phase-1 held-out, tables built on demand"),
                               ("phase2_us_per_prediction", "phase-2, tables built on demand"),
                               ("phase2_us_per_prediction_warm", "phase-2, tables prebuilt")):
                if key in p:
                    print(f"  prediction cost ({label}): {p[key]:.1f} us/request amortised")
        print(format_cells(live.cells, models))
        print(format_targets(summary["live"]["targets"]))
        print()
    all_waits = pd.concat([w for w in waits if not w.empty], ignore_index=True) if waits else None
    if all_waits is not None and len(all_waits):
        write_parquet(out / "waits.parquet", all_waits)
        live_conc = args.live_concurrency[0] if not args.no_live else None
        png = plot_waits(all_waits, out / "waits.png", live_conc)
        summary["plot"] = str(png) if png else None
    summary["wall_s"] = time.perf_counter() - t_start
    write_json(out / "summary.json", summary)
    print(f"results in {out} ({summary['wall_s']:.0f} s)\nreproduce: {cmd}")
    return 0
