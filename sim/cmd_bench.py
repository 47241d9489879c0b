"""``servelab bench sim``: the simulator against bare SimPy (:func:`servelab.sim.bench.bench`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from servelab.reproduce import command_line, run_metadata
from servelab.results import new_run_dir, write_json, write_parquet
from servelab.sim.bench import bench, format_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--requests", type=int, default=200_000, help="requests per case")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case (best reported)")
    parser.add_argument("--quick", action="store_true", help="only the bare loop and the headline")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: results/bench-sim-<time>)")


def run(args: argparse.Namespace) -> int:
    if args.requests < 1000 or args.repeats < 1:
        raise ValueError("--requests must be >= 1000 and --repeats >= 1")
    meta = run_metadata(command_line("bench sim", add_arguments, args, omit=("out",)))
    report = bench(args.requests, args.repeats, args.quick)
    out = args.out if args.out is not None else new_run_dir("bench-sim")
    write_json(out / "bench.json", {**report, **meta})
    write_parquet(out / "bench.parquet", pd.DataFrame(report["cases"]))
    print(format_report(report))
    print(f"wrote {out / 'bench.json'}\nreproduce: {meta['command']}")
    return 0
