"""``servelab best-config``: predict the best concurrency configuration from the traffic.

    servelab best-config --quick
    servelab best-config --profile results/profiles/P.json --samples 800 --live

Draws random single-phase workloads (rate as a share of capacity, model mix, input sizes,
burstiness), simulates each under every configuration (threads / processes / asyncio with
inline, thread or process offload x pool sizes), labels each with its best configuration by
the reward throughput / (1 + p99 s), and cross-validates a decision tree, a random forest and
gradient boosting on the workload features.  Then checks them on live measurements they never
saw: every ``servelab validate`` run under results/ (and, with ``--live``, a small fresh grid
measured now).  Output: results/best-config-<time>/ (samples / cv / importance / live Parquet,
summary.json, confusion.png, importance.png, shares.png); the simulations are resumable in
OUT/sweep (``--out`` an existing run folder).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from servelab.analysis.best_config import live as L
from servelab.analysis.best_config import study as S
from servelab.reproduce import command_line

FULL_LABEL, QUICK_LABEL = S.FULL.samples, S.QUICK.samples


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", type=Path, default=None,
                        help="calibrated profile (default: the newest under results/profiles/)")
    parser.add_argument("--samples", type=int, default=None,
                        help=f"training workloads (default {FULL_LABEL}; --quick {QUICK_LABEL})")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_LABEL} shorter workloads (about 3 minutes on 2 cores)")
    parser.add_argument("--schedulers", nargs="+", default=["fifo"],
                        help="schedulers to cross with every setup and pool size (default fifo)")
    parser.add_argument("--live", action="store_true",
                        help=f"also measure a small fresh live grid first ({len(L.LIVE_CELLS)} "
                        f"configurations x {', '.join(L.LIVE_WORKLOADS)} x loads 0.5, 0.8; "
                        "about 8 minutes) into results/validate-bc-<time>/")
    parser.add_argument("--seed", type=int, default=0, help="workload draw seed")
    parser.add_argument("--jobs", type=int, default=None, help="simulation processes "
                        "(default: one per core)")
    parser.add_argument("--out", type=Path, default=None,
                        help="run folder (default: results/best-config-<time>; an existing one "
                        "resumes its simulations)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from servelab.core.profile import load_profile
    from servelab.results import RESULTS_ROOT, new_run_dir
    from servelab.sim.executors import make_executor

    profile_path = args.profile or S.newest_profile(RESULTS_ROOT / "profiles")
    profile = load_profile(profile_path)
    if profile_path is None:
        print("profile: none under results/profiles/ and no --profile: the design-doc default "
              "(not a calibration of this machine; run servelab calibrate --quick first)")
    else:
        print(f"profile: {profile_path} ({profile.machine.source}, digest {profile.digest})")
    base = S.QUICK if args.quick else S.FULL
    settings = replace(base, samples=args.samples or base.samples, seed=args.seed,
                       schedulers=tuple(args.schedulers))
    if settings.samples < 10:
        raise ValueError("--samples must be at least 10 (5-fold cross-validation)")
    out = args.out if args.out is not None else new_run_dir("best-config")
    out.mkdir(parents=True, exist_ok=True)
    cmd = command_line("best-config", add_arguments, args, omit=("out", "jobs", "no_progress"))
    if args.profile is None and profile_path is not None:
        cmd += f" --profile {profile_path}"
    fresh = None
    if args.live:
        fresh = new_run_dir("validate-bc")
        print(f"live: a fresh grid into {fresh}")
        L.fresh_live(profile, fresh, str(profile_path) if profile_path else None,
                     say=lambda s: print(s, flush=True))
    n_cfg = len(settings.configs(profile))
    print(f"simulating {settings.samples} workloads x {n_cfg} configurations -> {out / 'sweep'}")
    t0 = time.perf_counter()
    with make_executor("local", jobs=args.jobs) as ex:
        samples = S.simulate_samples(profile, settings, ex, out / "sweep",
                                     progress=not args.no_progress)
    sim_s = time.perf_counter() - t0
    runs = L.find_runs(RESULTS_ROOT)
    points = L.load_points(runs)
    t1 = time.perf_counter()
    a = S.analyse(samples, profile, points, seed=settings.seed)
    figs = S.write(a, out, cmd, extra={
        "profile": {"path": str(profile_path) if profile_path else None,
                    "digest": profile.digest, "source": profile.machine.source},
        "settings": settings.meta(), "live_runs": [r.name for r in runs],
        "fresh_live": fresh.name if fresh else None,
        "timing": {"simulate_s": sim_s, "analyse_s": time.perf_counter() - t1}})
    print_report(a, fresh.name if fresh else None)
    print()
    for name, path in figs.items():
        print(f"figure {name}: {path}\n  reproduce: {cmd}")
    print(f"\nresults in {out} (simulations {sim_s:.0f} s)")
    return 0


def print_report(a: S.Analysis, fresh: str | None) -> None:
    print(f"\n{len(a.samples)} simulated workloads; best-config labels: "
          + ", ".join(f"{k} {v}" for k, v in a.samples["best"].value_counts().items()))
    print(f"median reward margin best vs runner-up {a.samples['margin'].median():.1%}; "
          f"decisive (>= {S.DECISIVE:.0%}) {(a.samples['margin'] >= S.DECISIVE).mean():.0%}")
    print(f"\n{'cross-validated':<16} {'accuracy':>8} {'decisive':>8} {'setup':>6} "
          f"{'share':>7} {'p10':>6} {'<=2%':>5}")
    for r in a.cv.to_dict("records"):
        print(f"{r['model']:<16} {r['accuracy']:>8.1%} {r['decisive_accuracy']:>8.1%} "
              f"{r['setup_accuracy']:>6.0%} {r['share']:>7.1%} {r['share_p10']:>6.1%} "
              f"{r['near']:>5.0%}")
    print("\npermutation importance (forest, held-out folds): drop in accuracy / share")
    for r in a.importance.head(6).to_dict("records"):
        print(f"  {r['feature']:<24} {r['accuracy_drop']:+.3f} ± {r['accuracy_drop_sd']:.3f}"
              f"   {r['share_drop']:+.4f}")
    print("\nthe tree's largest leaves:")
    for r in a.rules[:6]:
        print(f"  {r['text']}")
    ls = a.live_summary
    if ls.get("decisions"):
        print(f"\nheld-out live: {ls['decisions']} decisions from {ls['runs']} validate runs "
              f"({', '.join(ls['workloads'])}), median live margin {ls['median_live_margin']:.1%}"
              + (f"; fresh run {fresh}" if fresh else ""))
        for name in (*S.LEARNERS, "simulator", "majority", "random"):
            v = ls[name]
            print(f"  {name:<10} accuracy {v['accuracy']:>5.0%}  share of live-best reward "
                  f"{v['share']:.1%}")
        sub = a.live[(a.live["learner"] == a.best_learner) & (a.live["run"] == fresh)]
        if fresh and not sub.empty:
            f = L.summary(sub)
            print(f"  fresh run alone ({f['decisions']} decisions): {a.best_learner} accuracy "
                  f"{f['classifier']['accuracy']:.0%}, share {f['classifier']['share']:.1%}; "
                  f"simulator {f['simulator']['share']:.1%}, random {f['random']['share']:.1%}")
    else:
        print("\nheld-out live: no validate run under results/ (servelab validate --quick, or "
              "--live here)")
    print(f"\nanswer: {a.answer}")
