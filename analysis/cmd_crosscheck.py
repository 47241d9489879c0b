"""``servelab crosscheck``: simulated vs live latency and throughput
(:func:`servelab.analysis.crosscheck.crosscheck`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from servelab.analysis.crosscheck import crosscheck, format_points
from servelab.core.profile import load_profile


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", help="calibrated profile (default: the design-doc profile)")
    parser.add_argument("--model", default="mobilenet_v2", help="the model to serve")
    parser.add_argument("--concurrency", nargs="+", default=["threads", "processes"],
                        choices=("threads", "processes", "async"))
    parser.add_argument("--loads", nargs="+", type=float, default=[0.5, 0.8],
                        help="fractions of the measured live capacity")
    parser.add_argument("--workers", type=int, help="workers per server (default: the cores)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per load point")
    parser.add_argument("--variant", default="full", choices=("full", "tiny"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="results folder (default: results/crosscheck-*)")


def run(args: argparse.Namespace) -> int:
    from servelab.reproduce import command_line, run_metadata
    from servelab.results import new_run_dir, write_json, write_parquet

    meta = run_metadata(command_line("crosscheck", add_arguments, args, omit=("out",)))
    profile = load_profile(args.profile)
    out = args.out or new_run_dir("crosscheck")
    out.mkdir(parents=True, exist_ok=True)
    points = crosscheck(
        profile, args.concurrency, args.loads, args.model, args.workers, args.duration,
        variant=args.variant, seed=args.seed, log_dir=out,
    )
    print(format_points(points))
    worst = max(max(abs(p.p50_error), abs(p.throughput_error)) for p in points)
    write_parquet(out / "crosscheck.parquet", pd.DataFrame([p.row() for p in points]))
    write_json(out / "summary.json", {
        "points": [p.row() for p in points], "worst_error": worst,
        "profile_source": profile.machine.source, **meta,
    })
    print(f"worst error {worst:.0%}; results in {out}\nreproduce: {meta['command']}")
    return 0
