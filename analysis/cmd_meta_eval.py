"""``servelab meta eval``: the policies over held-out shifting workloads, next to the oracle,
the best static arm, random and round-robin — in simulation, or ``--live``.

    servelab meta eval --profile P.json                      # every shipped shifting* workload
    servelab meta eval --profile P.json --workload shifting --policy linucb --prior policy.json
    servelab meta eval --live --workload shifting-demo --prior policy.json

Simulated (meta's library, :mod:`servelab.meta.evaluate`): per workload a table (oracle share,
adaptation time per shift, switches, regret), the targets and the runs of arms the best policy
chose; writes results/meta-eval-<time>/.  ``--live`` (here in analysis: it drives the gateway,
a layer above meta): for each workload, the adaptive gateway with one policy live, then every
arm alone on the same arrivals (:mod:`servelab.analysis.adaptive_demo`); the live oracle share,
adaptation after each shift, switches and requests lost (:mod:`servelab.analysis.live_oracle`);
writes results/meta-eval-live-<time>/<workload>/.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from servelab.meta.cli_args import add_common_arguments, executor, read_common
from servelab.meta.evaluate import evaluate, format_choices, format_scores, format_targets
from servelab.meta.policies import default_policies
from servelab.meta.train import held_out_workloads, load_policy_file
from servelab.reproduce import command_line
from servelab.results import RESULTS_ROOT, new_run_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workload", nargs="+", default=None, metavar="NAME|FILE",
                        help="workloads (default: every shipped shifting* workload)")
    parser.add_argument("--policy", nargs="+", default=None, metavar="NAME[:k=v,...]",
                        help="policies (default: those in --prior, else one of each registered "
                        "policy and switch_aware:inner=linucb)")
    parser.add_argument("--prior", type=Path, default=None,
                        help="policy file from servelab meta train: also run each policy from it")
    parser.add_argument("--no-cold", action="store_true",
                        help="with --prior: only the trained policies, not the cold ones")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--cache", type=Path, default=RESULTS_ROOT / "meta-tables",
                        help="reward-table cache (default: results/meta-tables)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: results/meta-eval-<time>)")
    add_common_arguments(parser)
    g = parser.add_argument_group(
        "live", "--live measures instead of simulating: the gateway with the first --policy (or "
        "the --prior file's best, or the demo's default) on each --workload (default: "
        "shifting-demo), then every arm of --arms alone (default: the adaptive demo's four)")
    g.add_argument("--live", action="store_true", help="evaluate live, through the gateway")
    g.add_argument("--variant", default="full", choices=("full", "tiny"),
                   help="live: model variant (default: full)")
    g.add_argument("--duration", type=float, default=None,
                   help="live: scale the workload to this many seconds")
    g.add_argument("--warm-s", type=float, default=6.0,
                   help="live: seconds of warm-up traffic to each run's first backend (6)")
    g.add_argument("--prewarm", action="store_true",
                   help="live: start every arm's backend before the adaptive run")


def run_live(args: argparse.Namespace) -> int:
    import logging

    from servelab.analysis.adaptive_demo import DEMO_WORKLOAD, DemoConfig, run_demo

    if args.window_s <= 0 or (args.duration is not None and args.duration <= 0):
        raise ValueError("--window-s and --duration must be > 0")
    if args.policy and len(args.policy) > 1:
        raise ValueError("--live runs one policy: give one --policy (or a --prior file)")
    if args.profile is not None and not args.profile.exists():
        raise FileNotFoundError(f"profile not found: {args.profile}")
    policy = str(args.prior) if args.prior is not None else (args.policy[0] if args.policy
                                                             else None)
    out = args.out if args.out is not None else new_run_dir("meta-eval-live")
    cmd = command_line("meta eval", add_arguments, args, omit=("cache", "no_plots", "out"))
    for name in ("servelab.loadgen", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for w in args.workload or [DEMO_WORKLOAD]:
        cfg = DemoConfig(workload=w, arms=str(args.arms) if args.arms else None, policy=policy,
                         prior=args.profile is not None and policy is None,
                         variant=args.variant, duration=args.duration, window_s=args.window_s,
                         prewarm=args.prewarm, warm_s=args.warm_s)
        print(f"\n== {w} (live) ==", flush=True)
        run_demo(cfg, out / Path(w).stem, args.profile, cmd, say=lambda s: print(s, flush=True))
    print(f"\nwrote {out}\nreproduce: {cmd}")
    return 0


def run(args: argparse.Namespace) -> int:
    from servelab.sim.inputs import named_workload

    if args.live:
        return run_live(args)

    profile, arms, costs, slo = read_common(args)
    workloads = [named_workload(w) for w in args.workload] if args.workload else \
        held_out_workloads()
    prior = load_policy_file(args.prior, arms) if args.prior is not None else None
    if args.policy:
        policies = list(args.policy)
    elif prior is not None:
        policies = list(prior["policies"])
    else:
        policies = default_policies()
    if args.no_cold and prior is None:
        raise ValueError("--no-cold needs --prior")
    out = args.out if args.out is not None else new_run_dir("meta-eval")
    cmd = command_line("meta eval", add_arguments, args,
                       omit=("cache", "no_plots", "out"))
    print(f"meta eval: {len(workloads)} workload(s) x {len(arms)} arms; "
          f"{len(policies)} policies{' (+ prior)' if prior else ''} -> {out}")
    with executor(args) as ex:
        res = evaluate(workloads, profile, arms, policies, ex, out, prior=prior,
                       cache_dir=args.cache, window_s=args.window_s, reward_kind=args.reward,
                       slo_ms=slo, costs=costs, seed=args.seed, cold=not args.no_cold,
                       plots=not args.no_plots, command=cmd, progress=not args.no_progress)
    print(format_scores(res.scores))
    import json

    summary = json.loads((out / "summary.json").read_text())
    t = summary["targets"]
    if t:
        print("\n" + format_targets(t))
        best = t["best_policy"]
        choices = json.loads((out / "choices.json").read_text())
        for wl, by_policy in choices.items():
            print(f"\n{wl}: arms {best} served, and why (features seen before the pick)")
            print(format_choices(by_policy.get(best, []), limit=12))
    print(f"\nswitching costs: {costs.source}")
    print(f"wrote {out}/summary.json, windows.parquet, choices.json and plots\nreproduce: {cmd}")
    return 0
