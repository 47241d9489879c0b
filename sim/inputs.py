"""What a simulation takes from the command line, shared by ``simulate``, ``sweep`` and the
meta-scheduler's commands: the common flags, SLOs (``--slo-ms``), a server configuration from
flags over a base file, workloads by name or file, the profile."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from servelab.core.config import ServerConfig, from_args
from servelab.core.profile import Profile, load_profile
from servelab.core.workload import WorkloadSpec
from servelab.sim.run import PREDICTORS
from servelab.workloads import load_workload


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
