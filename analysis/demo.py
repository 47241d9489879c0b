"""``servelab demo`` (``make demo``): the pipeline end to end on this machine.

1. **Calibrate** — a quick calibration of this machine (cached per machine under
   ``results/profiles/``; ``--recalibrate`` measures again).
2. **Simulate** — a small sweep of configurations (concurrency model x workers x scheduler) over
   three shipped workloads with that profile, and the oracle table: the best configuration per
   workload.
3. **Prove** — the live cross-check: MobileNetV2 served for real by the thread and the process
   server at 50% and 80% of their measured capacity, next to the simulation of the same runs.
4. A short summary table, with the command that reproduces each number.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)

SWEEP_WORKLOADS = ("fast-only", "mixed", "bursty")
SWEEP_GRID = ("concurrency=threads,processes,async", "workers=1,2,4", "scheduler=fifo,sjf,mlfq")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recalibrate", action="store_true",
                        help="measure this machine again even if a cached profile exists")
    parser.add_argument("--variant", default="full", choices=("full", "tiny"),
                        help="model size (tiny: a fast smoke run of the same pipeline)")
    parser.add_argument("--sweep-duration", type=float, default=30.0,
                        help="simulated seconds per sweep point")
    parser.add_argument("--check-duration", type=float, default=12.0,
                        help="live seconds per cross-check point")
    parser.add_argument("--out", type=Path, help="results folder (default: results/demo-*)")
    parser.add_argument("--skip-live", action="store_true", help="calibrate and simulate only")


def _stage(n: int, title: str) -> float:
    print(f"\n=== {n}. {title} " + "=" * max(0, 60 - len(title)), flush=True)
    return time.perf_counter()


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from servelab import cli
    from servelab.analysis.results import new_run_dir, write_json
    from servelab.calibrate.commands import calibrate, default_out, show
    from servelab.core.profile import Profile

    out = args.out or new_run_dir("demo")
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()

    t = _stage(1, "calibrate this machine")
    prof_path = default_out(quick=True)
    if args.variant == "tiny":
        prof_path = prof_path.with_name(prof_path.stem + "-tiny.json")
    if prof_path.exists() and not args.recalibrate:
        profile = Profile.load(prof_path)
        print(f"cached profile {prof_path} (measured {profile.machine.date}; --recalibrate to redo)")
    else:
        profile, _ = calibrate(prof_path, quick=True, models=["mobilenet_v2", "distilbert",
                                                             "lstm_forecaster"],
                               variant=args.variant, progress=True)
    print(show(profile))
    print(f"[{time.perf_counter() - t:.0f}s] reproduce: servelab calibrate --quick --out {prof_path}")

    t = _stage(2, "simulate a sweep with that profile")
    sweep_out = out / "sweep"
    sweep_argv = [
        "sweep", "--profile", str(prof_path), "--workloads", *SWEEP_WORKLOADS,
        "--duration", f"{args.sweep_duration:g}", "--grid", *SWEEP_GRID,
        "--model-lock", "none", "--objective", "reward", "--out", str(sweep_out), "--no-progress",
    ]
    rc = cli.main(sweep_argv)
    if rc != 0:
        return rc
    print(f"[{time.perf_counter() - t:.0f}s] reproduce: servelab {' '.join(sweep_argv)}")
    oracle = pd.read_parquet(sweep_out / "oracle.parquet")

    points = []
    if not args.skip_live:
        from servelab.analysis.crosscheck import crosscheck, format_points

        t = _stage(3, "prove it live: sim vs live, MobileNetV2")
        points = crosscheck(profile, ("threads", "processes"), (0.5, 0.8), "mobilenet_v2",
                            duration=args.check_duration, variant=args.variant, log_dir=out)
        print(format_points(points))
        print(f"[{time.perf_counter() - t:.0f}s] reproduce: servelab crosscheck --profile "
              f"{prof_path} --duration {args.check_duration:g} --variant {args.variant}")

    _stage(4 if points else 3, "summary")
    print(f"profile: {profile.machine.cpu_model}, {profile.machine.cores} cores — "
          f"{profile.machine.source}")
    print(f"{'workload':<12} {'best configuration (sim, reward)':<36} {'thr/s':>7} {'p99 ms':>8}")
    for _, r in oracle.iterrows():
        print(f"{r['workload']:<12} {r['best_config']:<36} {r['best_throughput']:>7.1f} "
              f"{r['best_p99_s'] * 1e3:>8.1f}")
    if points:
        worst = max(max(abs(p.p50_error), abs(p.throughput_error)) for p in points)
        print(f"sim vs live (MobileNetV2, FIFO): worst |error| {worst:.0%} over "
              f"{len(points)} points (target 15%)")
    write_json(out / "summary.json", {
        "profile": str(prof_path), "oracle": oracle.to_dict(orient="records"),
        "crosscheck": [p.row() for p in points],
    })
    print(f"\ndone in {time.perf_counter() - t_all:.0f}s; results in {out}")
    return 0
