"""``servelab bench bandits``: what one decision costs, per bandit policy
(:func:`servelab.meta.bench.bench`; the method is in that module's docstring)."""

from __future__ import annotations

import argparse
from pathlib import Path

from servelab.core.bandits import BANDITS
from servelab.meta.bench import TARGET_S, bench, format_table
from servelab.reproduce import command_line, run_metadata
from servelab.results import new_run_dir, write_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", action="append", choices=sorted(BANDITS), default=None,
                        help="a policy to time (repeatable; default: every registered one)")
    parser.add_argument("--arms", type=int, nargs="+", default=[27, 64], help="arm counts")
    parser.add_argument("--steps", type=int, default=20_000, help="decisions per policy")
    parser.add_argument("--seed", type=int, default=0, help="seed of the rewards and policies")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: results/bench-bandits-<time>)")


def run(args: argparse.Namespace) -> int:
    if args.steps < 100 or min(args.arms) < 1:
        raise ValueError("--steps must be >= 100 and --arms >= 1")
    meta = run_metadata(command_line("bench bandits", add_arguments, args, omit=("out",)))
    names = args.policy or list(BANDITS)
    rows = bench(names, args.arms, args.steps, args.seed)
    out = args.out if args.out is not None else new_run_dir("bench-bandits")
    write_json(out / "summary.json", {"kind": "bench-bandits", "version": 2, **meta,
                                      "target_s": TARGET_S,
                                      "meets_target": all(r["meets_target"] for r in rows),
                                      "rows": rows})
    print(format_table(rows))
    print(f"wrote {out / 'summary.json'}\nreproduce: {meta['command']}")
    return 0
