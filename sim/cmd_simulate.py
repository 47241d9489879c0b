"""``servelab simulate``: one configuration under one workload, on a profile's machine.

Prints the summary (throughput, latency per model, status counts) and writes
``records.parquet`` (the shared per-request schema) and ``summary.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from servelab.core.config import ServerConfig, add_dataclass_args
from servelab.reproduce import command_line, run_metadata
from servelab.results import new_run_dir, write_json, write_parquet
from servelab.sim.inputs import (
    add_common_arguments,
    config_from_args,
    named_workload,
    parse_slo,
    profile_from_args,
)
from servelab.sim.run import format_summary, simulate

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workload", default="mixed", help="shipped workload name or YAML/JSON file (default: mixed)"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed (default: the workload's)")
    parser.add_argument("--rate-scale", type=float, default=1.0, help="multiply every arrival rate")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: results/simulate-<time>)")
    add_common_arguments(parser)
    add_dataclass_args(parser, ServerConfig)


def run(args: argparse.Namespace) -> int:
    meta = run_metadata(command_line("simulate", add_arguments, args, omit=("out",)))
    config = config_from_args(args)
    spec = named_workload(args.workload, args.duration)
    if args.rate_scale != 1.0:
        spec = spec.scaled(args.rate_scale)
    profile = profile_from_args(args)
    if profile.machine.source:
        log.info("profile: %s", profile.machine.source)
    res = simulate(
        config, spec, profile, seed=args.seed, predictor=args.predictor,
        slo_ms=parse_slo(args.slo_ms),
    )
    out = args.out if args.out is not None else new_run_dir("simulate")
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(out / "records.parquet", res.records)
    write_json(out / "summary.json", {
        **res.summary, "workload_spec": res.workload.to_dict(), "rate_scale": args.rate_scale,
        **meta,
    })
    print(format_summary(res.summary))
    print(f"wrote {out / 'records.parquet'} and {out / 'summary.json'}")
    print(f"reproduce: {meta['command']}")
    return 0
