"""Flags and readers that ``servelab meta train`` and ``servelab meta eval`` share."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from servelab.core.profile import Profile, load_profile
from servelab.meta.arms import ArmSet, load_arms
from servelab.meta.replay import SwitchCosts
from servelab.meta.windows import REWARDS
from servelab.sim.executors import EXECUTORS, make_executor
from servelab.sim.executors.local import default_jobs


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", type=Path, default=None,
                        help="machine profile JSON (default: the design-doc profile)")
    parser.add_argument("--arms", type=Path, default=None, metavar="FILE",
                        help="arm file (YAML/JSON) restricting or extending the default 36 arms")
    parser.add_argument("--window-s", type=float, default=1.0,
                        help="decision window in seconds (default: 1)")
    parser.add_argument("--reward", default="reward", choices=list(REWARDS),
                        help="window reward: " + "; ".join(f"{k}: {v}" for k, v in REWARDS.items()))
    parser.add_argument("--slo-ms", nargs="+", default=None, metavar="MS|MODEL=MS",
                        help="SLOs for --reward goodput (default: 100 ms fast/medium models, "
                        "1000 ms slow)")
    parser.add_argument("--free-switching", action="store_true",
                        help="switching costs nothing (default: the profile's / measured "
                        "backend start-up times)")
    parser.add_argument("--max-warm", type=int, default=2,
                        help="backends the gateway keeps warm, the serving one included; a "
                        "switch back to a warm one is free (default: 2, the gateway's)")
    parser.add_argument("--seed", type=int, default=0, help="policy and draw seed (default: 0)")
    parser.add_argument("--executor", default="local", choices=list(EXECUTORS))
    parser.add_argument("--address", default=None, help="Ray cluster address (--executor ray)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="parallel simulations (default: the usable cores)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def read_common(args: argparse.Namespace) -> tuple[Profile, ArmSet, SwitchCosts, Any]:
    from servelab.sim.inputs import parse_slo

    if args.window_s <= 0:
        raise ValueError("--window-s must be > 0")
    profile = load_profile(args.profile)
    arms = load_arms(args.arms)
    if args.max_warm < 1:
        raise ValueError("--max-warm must be >= 1")
    costs = SwitchCosts.free() if args.free_switching else \
        replace(SwitchCosts.from_profile(profile), max_warm=args.max_warm)
    slo = parse_slo(args.slo_ms)
    return profile, arms, costs, slo


def executor(args: argparse.Namespace) -> Any:
    kwargs: dict[str, Any] = {"jobs": args.jobs}
    if args.executor == "ray":
        kwargs["address"] = args.address
    elif args.jobs is None:
        kwargs["jobs"] = default_jobs()
    return make_executor(args.executor, **kwargs)

