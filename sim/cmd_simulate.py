"""``servelab simulate``: one configuration under one workload, on a profile's machine.

Prints the summary (throughput, latency per model, status counts) and writes
``records.parquet`` (the shared per-request schema) and ``summary.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from servelab.core.config import ServerConfig, add_dataclass_args, from_args
from servelab.core.profile import Profile, load_profile
from servelab.core.workload import WorkloadSpec
from servelab.reproduce import command_line, run_metadata
from servelab.results import new_run_dir, write_json, write_parquet
from servelab.sim.run import PREDICTORS, format_summary, simulate
from servelab.workloads import load_workload

log = logging.getLogger(__name__)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by ``simulate`` and ``sweep``."""
    parser.add_argument(
        "--profile", type=Path, default=None,
        help="machine profile JSON (default: the design-doc profile, not calibrated)",
    )
    parser.add_argument("--duration", type=float, default=None, help="override the workload duration (s)")
    parser.add_argument(
        "--predictor", default="mean", choices=PREDICTORS,
        help="runtime predictor for SJF/priority: per-model mean or the oracle (default: mean)",
    )
    parser.add_argument(
        "--slo-ms", nargs="+", default=None, metavar="MS|MODEL=MS",
        help="latency SLO for goodput: one number, or MODEL=MS pairs (* = any other model)",
    )
    parser.add_argument(
        "--config", type=Path, default=None,
        help="a server config JSON as base; config flags that differ from their defaults "
        "override it",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workload", default="mixed", help="shipped workload name or YAML/JSON file (default: mixed)"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed (default: the workload's)")
    parser.add_argument("--rate-scale", type=float, default=1.0, help="multiply every arrival rate")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: results/simulate-<time>)")
    add_common_arguments(parser)
    add_dataclass_args(parser, ServerConfig)


def parse_slo(values: Sequence[str] | None) -> float | dict[str, float] | None:
    """``["100"]`` -> 100.0; ``["mobilenet_v2=50", "*=500"]`` -> {model: ms}."""
    if not values:
        return None
    if len(values) == 1 and "=" not in values[0]:
        return _positive(values[0])
    out: dict[str, float] = {}
    for v in values:
        model, sep, ms = v.partition("=")
        if not sep:
            raise ValueError(f"--slo-ms {v!r}: expected MODEL=MS (or a single number)")
        out[model] = _positive(ms)
    return out


def _positive(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise ValueError(f"--slo-ms: {text!r} is not a number") from None
    if not x > 0:
        raise ValueError(f"--slo-ms must be > 0, got {x}")
    return x


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    flags = from_args(ServerConfig, args)
    if args.config is None:
        return flags
    if not args.config.exists():
        raise FileNotFoundError(f"config file not found: {args.config}")
    base = ServerConfig.from_dict(json.loads(args.config.read_text()))
    default = ServerConfig()
    changed = {
        f.name: getattr(flags, f.name) for f in fields(ServerConfig)
        if getattr(flags, f.name) != getattr(default, f.name)
    }
    return ServerConfig.from_dict({**base.to_dict(), **changed})


def named_workload(name: str, duration: float | None = None) -> WorkloadSpec:
    """A shipped or file workload, named after its file when it has no name of its own."""
    overrides: dict[str, Any] = {}
    if duration is not None:
        overrides["duration"] = duration
    spec = load_workload(name, **overrides)
    if spec.name == WorkloadSpec().name:
        from dataclasses import replace

        spec = replace(spec, name=Path(name).stem)
    if duration is not None and spec.phases:
        raise ValueError(f"--duration cannot shorten the phased workload {name!r}")
    return spec


def profile_from_args(args: argparse.Namespace) -> Profile:
    return load_profile(args.profile)


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
