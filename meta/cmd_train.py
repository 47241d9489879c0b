"""``servelab meta train``: warm-start the bandit policies over randomized shifting workloads.

    servelab meta train --profile results/profiles/P.json --quick
    servelab meta train --profile P.json --workloads 48 --out results/meta-train-x --resume

Writes the policy file (JSON; ``--out``/policy.json unless ``--policy-file``) and caches every
training reward table under ``--out``/tables (``--resume`` reuses them).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from servelab.meta.cli_args import add_common_arguments, executor, read_common
from servelab.meta.policies import default_policies
from servelab.meta.train import DEFAULT_WORKLOADS, QUICK_WORKLOADS, Ranges, train
from servelab.reproduce import command_line
from servelab.results import new_run_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workloads", type=int, default=None,
                        help=f"training workloads to draw (default: {DEFAULT_WORKLOADS}; "
                        f"--quick: {QUICK_WORKLOADS})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_WORKLOADS} workloads")
    parser.add_argument("--policy", nargs="+", default=None, metavar="NAME[:k=v,...]",
                        help="policies to train (default: one of each registered policy, and "
                        "switch_aware:inner=linucb)")
    parser.add_argument("--out", type=Path, default=None,
                        help="run folder (default: results/meta-train-<time>)")
    parser.add_argument("--policy-file", type=Path, default=None,
                        help="where to write the policy file (default: OUT/policy.json)")
    r = Ranges()
    parser.add_argument("--phases", type=int, nargs=2, default=list(r.phases),
                        metavar=("MIN", "MAX"),
                        help="phases per training workload (default: %(default)s)")
    parser.add_argument("--phase-s", type=float, nargs=2, default=list(r.phase_s),
                        metavar=("MIN", "MAX"), help="phase length in s (default: %(default)s)")
    parser.add_argument("--load", type=float, nargs=2, default=list(r.load), metavar=("MIN", "MAX"),
                        help="offered load over estimated capacity, log-uniform "
                        "(default: %(default)s)")
    parser.add_argument("--resume", action="store_true",
                        help="reuse the reward tables already in --out (needs --out)")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.resume and args.out is None:
        raise ValueError("--resume needs --out (the run folder to resume)")
    if args.out is not None and not args.resume and (args.out / "tables").is_dir() and \
            any((args.out / "tables").iterdir()):
        raise ValueError(f"{args.out} has reward tables already: pass --resume to reuse them")
    profile, arms, costs, slo = read_common(args)
    n = args.workloads or (QUICK_WORKLOADS if args.quick else DEFAULT_WORKLOADS)
    policies = args.policy or default_policies()
    ranges = Ranges(phases=(args.phases[0], args.phases[1]),
                    phase_s=(args.phase_s[0], args.phase_s[1]), load=(args.load[0], args.load[1]))
    if not (1 <= ranges.phases[0] <= ranges.phases[1]) or not (0 < ranges.phase_s[0] <=
                                                               ranges.phase_s[1]):
        raise ValueError("--phases and --phase-s need 1 <= MIN <= MAX and 0 < MIN <= MAX")
    if not 0 < ranges.load[0] <= ranges.load[1]:
        raise ValueError("--load needs 0 < MIN <= MAX")
    out = args.out if args.out is not None else new_run_dir("meta-train")
    cmd = command_line("meta train", add_arguments, args, omit=("resume",))
    print(f"meta train: {n} workloads x {len(arms)} arms, policies {', '.join(policies)} -> {out}")
    t0 = time.perf_counter()
    with executor(args) as ex:
        res = train(profile, arms, policies, ex, out, n_workloads=n, seed=args.seed,
                    window_s=args.window_s, reward_kind=args.reward, slo_ms=slo, costs=costs,
                    ranges=ranges,
                    policy_file=args.policy_file, command=cmd, progress=not args.no_progress)
    wall = time.perf_counter() - t0
    print(f"\n{'policy':<36} {'fit':<17} {'train share':>11} {'fit s':>7}")
    for spec, entry in res.policies.items():
        how = entry["training"]
        print(f"{spec:<36} {how['mode']:<17} {how['train_oracle_share_mean']:>11.3f} "
              f"{how['fit_s']:>7.2f}")
    print(f"\nreward tables {res.table_s:.0f} s, fitting {res.fit_s:.1f} s, total {wall:.0f} s")
    print(f"wrote {res.path}\nreproduce: {cmd}")
    return 0
