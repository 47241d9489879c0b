"""``servelab sweep``: a grid of configurations x workloads, resumable, plus the oracle table.

    servelab sweep --workloads fast-only mixed \\
        --grid concurrency=threads,processes workers=1,2,4 scheduler=fifo,sjf \\
        --objective goodput --slo-ms 100 --out results/sweep-demo

Non-grid config fields come from the usual config flags.  Re-running with the same ``--out``
skips the finished points.  Writes ``sweep.parquet`` (one row per point), ``oracle.parquet`` /
``oracle.json`` (the best configuration per workload) and ``sweep.json`` (the manifest).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from servelab.core.config import ServerConfig, add_dataclass_args
from servelab.reproduce import command_line, run_metadata
from servelab.sim.executors import EXECUTORS
from servelab.sim.inputs import (
    add_common_arguments,
    config_from_args,
    named_workload,
    parse_slo,
    profile_from_args,
)
from servelab.sim.oracle import OBJECTIVES, format_oracle
from servelab.sim.sweep import expand_configs, parse_grid, sweep
from servelab.workloads import list_workloads

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workloads", nargs="+", default=None, metavar="NAME|FILE",
        help="workloads to sweep (default: every shipped workload)",
    )
    parser.add_argument(
        "--grid", nargs="*", default=[], metavar="KEY=V1,V2",
        help="config fields to vary, e.g. concurrency=threads,processes workers=1,2,4",
    )
    parser.add_argument(
        "--scales", type=float, nargs="+", default=[1.0], help="arrival-rate multipliers"
    )
    parser.add_argument(
        "--seeds", type=int, default=1,
        help="seeds per point: the workload's own seed, +1, ... (default: 1)",
    )
    parser.add_argument("--executor", default="local", choices=list(EXECUTORS))
    parser.add_argument("--address", default=None, help="Ray cluster address (--executor ray)")
    parser.add_argument(
        "--jobs", type=int, default=None, help="parallel workers (default: the usable cores)"
    )
    parser.add_argument("--objective", default="reward", choices=list(OBJECTIVES))
    parser.add_argument("--records", action="store_true", help="also keep every point's records")
    parser.add_argument("--no-resume", action="store_true", help="re-run finished points")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--out", type=Path, default=None,
        help="output folder (default: results/sweep-<time>); pass an old one to resume it",
    )
    add_common_arguments(parser)
    add_dataclass_args(parser, ServerConfig)


def run(args: argparse.Namespace) -> int:
    meta = run_metadata(command_line("sweep", add_arguments, args, omit=("out",)))
    workloads = {}
    for name in args.workloads or list_workloads():
        spec = named_workload(name, args.duration)
        workloads[spec.name if spec.name not in workloads else name] = spec
    res = sweep(
        workloads, expand_configs(config_from_args(args), parse_grid(args.grid)),
        profile_from_args(args), args.out, scales=args.scales, seeds=args.seeds,
        predictor=args.predictor, slo_ms=parse_slo(args.slo_ms), objective=args.objective,
        records=args.records, executor=args.executor, jobs=args.jobs, address=args.address,
        resume=not args.no_resume, progress=not args.no_progress, grid=args.grid, meta=meta,
    )
    outcome = res.outcome
    print(f"ran {outcome.ran}, skipped {outcome.skipped} finished, failed {len(outcome.failed)}")
    for pid, err in outcome.failed:
        print(f"  FAILED {pid}: {err}")
    if res.oracle is not None:
        print(f"\noracle ({args.objective}: {OBJECTIVES[args.objective]}):")
        print(format_oracle(res.oracle))
    print(f"\nwrote {res.out / 'sweep.parquet'} ({len(outcome.table)} rows)")
    print(f"reproduce: {meta['command']}")
    return 1 if outcome.failed else 0
