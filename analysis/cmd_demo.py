"""``servelab demo`` (``make demo``): the pipeline end to end on this machine.

1. **Calibrate** — a quick calibration of this machine (cached per machine under
   ``results/profiles/``; ``--recalibrate`` measures again).
2. **Simulate** — a small sweep of configurations (concurrency model x workers x scheduler) over
   three shipped workloads with that profile, and the oracle table: the best configuration per
   workload.
3. **Prove** — a short cut of ``servelab validate --quick``: four server setups served for real
   on the mixed workload at a common rate (50% and 80% of their median live capacity), next to
   the simulation of the same runs; its reward rank correlation and the simulator's top pick as
   a share of the live best.
4. A short summary table, with the command that reproduces each number.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SWEEP_WORKLOADS = ("fast-only", "mixed", "bursty")
LIVE_SETUPS = ("threads", "processes", "async-thread", "async-process")
TINY_LIVE = ("--warmup", "0.5", "--ladder-step", "1.5", "--ladder-warmup", "0.5",
             "--ladder-steps", "3", "--server-warmup", "0.5")
"""Tiny models: a smoke run, short steps."""
TINY_ADAPTIVE = (15.0, 1.0)
"""The adaptive demo's workload seconds and warm-up seconds with tiny models: a quick run."""
SWEEP_GRID = ("concurrency=threads,processes,async", "workers=1,2,4", "scheduler=fifo,sjf,mlfq")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recalibrate", action="store_true",
                        help="measure this machine again even if a cached profile exists")
    parser.add_argument("--variant", default="full", choices=("full", "tiny"),
                        help="model size (tiny: a fast smoke run of the same pipeline)")
    parser.add_argument("--sweep-duration", type=float, default=30.0,
                        help="simulated seconds per sweep point")
    parser.add_argument("--check-duration", type=float, default=8.0,
                        help="measured live seconds per validation point (after its warm-up)")
    parser.add_argument("--out", type=Path, help="results folder (default: results/demo-*)")
    parser.add_argument("--skip-live", action="store_true", help="calibrate and simulate only")
    g = parser.add_argument_group(
        "adaptive demo", "--adaptive runs the adaptive gateway live on a shifting workload next "
        "to every static arm on the same arrivals, instead of the pipeline "
        "(analysis/adaptive_demo.py)")
    g.add_argument("--adaptive", action="store_true",
                   help="run the adaptive demo (make demo runs it after the pipeline)")
    g.add_argument("--workload", default="shifting-demo",
                   help="shipped workload name or file (default: %(default)s)")
    g.add_argument("--arms", default=None, metavar="FILE",
                   help="arm file (default: the demo's four arms, see adaptive_demo.DEMO_ARMS)")
    g.add_argument("--policy", default=None, metavar="SPEC|FILE",
                   help="the gateway's policy (default: a prior trained by meta train --quick "
                   "when a profile exists, else switch_aware:inner=ucb1 from scratch)")
    g.add_argument("--profile", type=Path, default=None,
                   help="profile for the prior (default: this machine's cached demo profile; "
                   "none with --variant tiny)")
    g.add_argument("--no-prior", action="store_true",
                   help="no meta train prior: the policy learns from scratch")
    g.add_argument("--duration", type=float, default=None,
                   help="seconds of workload per run, phases scaled in proportion (default: "
                   f"the workload's; --variant tiny: {TINY_ADAPTIVE[0]:g} s)")
    g.add_argument("--window-s", type=float, default=1.0, help="decision window (s)")
    g.add_argument("--seed", type=int, default=None, help="workload seed (default: its own)")
    g.add_argument("--warm-s", type=float, default=None,
                   help="seconds of the workload's models sent straight to each run's serving "
                   "backend before its run, so fresh and reused backends start equally warm "
                   f"(default: 6; --variant tiny: {TINY_ADAPTIVE[1]:g})")
    g.add_argument("--prewarm", action="store_true",
                   help="start every arm's backend before the adaptive run (default: each is "
                   "started when the policy first picks it, under traffic)")


def _stage(n: int, title: str) -> float:
    print(f"\n=== {n}. {title} " + "=" * max(0, 60 - len(title)), flush=True)
    return time.perf_counter()


def _validate(args: argparse.Namespace, profile: Any, prof_path: Path, out: Path) -> Any:
    """``servelab validate --quick`` cut to :data:`LIVE_SETUPS` (three of them with tiny
    models) on the mixed workload."""
    from servelab.analysis import cmd_validate
    from servelab.analysis.validate import report
    from servelab.analysis.validate.validation import build_grid, validate
    from servelab.reproduce import parse

    setups = LIVE_SETUPS[:3] if args.variant == "tiny" else LIVE_SETUPS
    argv = ["--profile", str(prof_path), "--quick", "--setups", *setups, "--workers", "2",
            "--schedulers", "fifo", "--workloads", "mixed", "--duration",
            f"{args.check_duration:g}", "--variant", args.variant,
            *(TINY_LIVE if args.variant == "tiny" else ())]
    vargs = parse("validate", cmd_validate.add_arguments, argv)
    logging.getLogger("servelab.loadgen").setLevel(logging.WARNING)
    res = validate(build_grid(vargs), profile, out, attribute=1,
                   command=cmd_validate.command_line(vargs),
                   profile_path=str(prof_path), say=lambda s: print(s, flush=True))
    if not res.points.empty:
        from servelab.analysis.validate.validation import format_speed

        print(report.format_points(res.points))
        print(format_speed(res.summary["speed"]))
        print(report.format_workloads(res.figures))
        print(report.format_attribution(res.attribution))
    return res


def profile_path(variant: str) -> Path:
    """Where the demo caches this machine's quick profile (one per model variant)."""
    from servelab.calibrate.calibration import default_out

    path = default_out(quick=True)
    return path.with_name(path.stem + "-tiny.json") if variant == "tiny" else path


def run_adaptive(args: argparse.Namespace) -> int:
    """``servelab demo --adaptive`` (see :mod:`servelab.analysis.adaptive_demo`)."""
    from servelab.analysis.adaptive_demo import DemoConfig, run_demo
    from servelab.reproduce import command_line
    from servelab.results import new_run_dir

    tiny = args.variant == "tiny"
    if args.window_s <= 0 or (args.duration is not None and args.duration <= 0):
        raise ValueError("--window-s and --duration must be > 0")
    if args.warm_s is not None and args.warm_s < 0:
        raise ValueError("--warm-s must be >= 0")
    duration = args.duration if args.duration is not None or not tiny else TINY_ADAPTIVE[0]
    warm_s = args.warm_s if args.warm_s is not None else TINY_ADAPTIVE[1] if tiny else 6.0
    prof: Path | None = args.profile
    if prof is not None and not prof.exists():
        raise FileNotFoundError(f"profile not found: {prof}")
    if prof is None and tiny and args.policy is None and not args.no_prior:
        # Training on the tiny profile simulates its models' high rates for minutes.
        print("tiny variant: no prior unless --profile names one (training on the tiny "
              "profile takes minutes)", flush=True)
    elif prof is None and profile_path(args.variant).exists():
        prof = profile_path(args.variant)
    cfg = DemoConfig(workload=args.workload, arms=args.arms, policy=args.policy,
                     prior=not args.no_prior, variant=args.variant, duration=duration,
                     window_s=args.window_s, seed=args.seed, prewarm=args.prewarm,
                     warm_s=warm_s)
    out = args.out or new_run_dir("demo-adaptive")
    for name in ("servelab.loadgen", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    run_demo(cfg, out, prof,
             command_line("demo", add_arguments, args, omit=("out",)),
             say=lambda s: print(s, flush=True))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.adaptive:
        return run_adaptive(args)

    from servelab.calibrate import cmd_calibrate as cal
    from servelab.calibrate.calibration import calibrate, show
    from servelab.core.profile import Profile, ProfileError
    from servelab.reproduce import command_line, parse, run_metadata
    from servelab.results import new_run_dir, write_json
    from servelab.sim import cmd_sweep
    from servelab.sim.inputs import config_from_args, named_workload
    from servelab.sim.oracle import OBJECTIVES, format_oracle
    from servelab.sim.sweep import expand_configs, parse_grid, sweep

    meta = run_metadata(command_line("demo", add_arguments, args, omit=("out",)))
    out = args.out or new_run_dir("demo")
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()

    t = _stage(1, "calibrate this machine")
    prof_path = profile_path(args.variant)
    cal_args = parse("calibrate", cal.add_arguments,
                     ["--quick", "--out", str(prof_path), "--variant", args.variant,
                      "--models", "mobilenet_v2", "distilbert", "lstm_forecaster"])
    profile = None
    if prof_path.exists() and not args.recalibrate:
        try:
            profile = Profile.load(prof_path)
        except ProfileError as e:  # written by an older servelab: rebuild from its stored points
            print(f"cached profile {prof_path} does not load with this version ({e}); "
                  "calibrating again (points already measured are reused)")
        else:
            print(f"cached profile {prof_path} (measured {profile.machine.date}; "
                  "--recalibrate to redo)")
    if profile is None:
        profile, _ = calibrate(prof_path, quick=True, models=cal_args.models,
                               variant=cal_args.variant, progress=True,
                               command=command_line("calibrate", cal.add_arguments, cal_args))
    print(show(profile))
    print(f"[{time.perf_counter() - t:.0f}s] reproduce: "
          f"{command_line('calibrate', cal.add_arguments, cal_args)}")

    t = _stage(2, "simulate a sweep with that profile")
    sweep_out = out / "sweep"
    sargs = parse("sweep", cmd_sweep.add_arguments, [
        "--profile", str(prof_path), "--workloads", *SWEEP_WORKLOADS,
        "--duration", f"{args.sweep_duration:g}", "--grid", *SWEEP_GRID,
        "--model-lock", "none", "--objective", "reward", "--out", str(sweep_out), "--no-progress",
    ])
    sweep_cmd = command_line("sweep", cmd_sweep.add_arguments, sargs)
    workloads = {s.name: s for s in (named_workload(w, sargs.duration) for w in SWEEP_WORKLOADS)}
    swept = sweep(
        workloads, expand_configs(config_from_args(sargs), parse_grid(sargs.grid)), profile,
        sweep_out, predictor=sargs.predictor, objective=sargs.objective, progress=False,
        grid=sargs.grid, meta=run_metadata(sweep_cmd, meta["machine"]),
    )
    for pid, err in swept.outcome.failed:
        print(f"  FAILED {pid}: {err}")
    if swept.outcome.failed or swept.oracle is None:
        return 1
    print(f"\noracle ({sargs.objective}: {OBJECTIVES[sargs.objective]}):")
    print(format_oracle(swept.oracle))
    print(f"[{time.perf_counter() - t:.0f}s] reproduce: {sweep_cmd}")
    oracle = swept.oracle

    live = None
    if not args.skip_live:
        t = _stage(3, "prove it live: validate --quick, cut short")
        live = _validate(args, profile, prof_path, out / "validate")
        print(f"[{time.perf_counter() - t:.0f}s] reproduce: {live.summary['command']}")

    _stage(4 if live else 3, "summary")
    print(f"profile: {profile.machine.cpu_model}, {profile.machine.cores} cores — "
          f"{profile.machine.source}")
    print(f"{'workload':<12} {'best configuration (sim, reward)':<36} {'thr/s':>7} {'p99 ms':>8}")
    for _, r in oracle.iterrows():
        print(f"{r['workload']:<12} {r['best_config']:<36} {r['best_throughput']:>7.1f} "
              f"{r['best_p99_s'] * 1e3:>8.1f}")
    figures = {}
    if live is not None and live.figures:
        for wl, f in live.figures["workloads"].items():
            figures[wl] = {"spearman": f["spearman"], "top_pick": f["top_pick"]}
            sp = f"{f['spearman']:+.2f}" if math.isfinite(f["spearman"]) else "n/a"
            tp = f"{f['top_pick']:.0%}" if math.isfinite(f["top_pick"]) else "n/a"
            print(f"sim vs live ({wl}, {len(live.points['cell'].unique())} configurations): "
                  f"reward Spearman {sp} (target 0.8), simulator's top pick {tp} of the live "
                  f"best (target 95%); details in {live.out}")
    write_json(out / "summary.json", {
        **meta, "profile": str(prof_path), "oracle": oracle.to_dict(orient="records"),
        "validate": {"out": str(live.out), "figures": figures,
                     "command": live.summary["command"]} if live is not None else None,
    })
    print(f"\ndone in {time.perf_counter() - t_all:.0f}s; results in {out}")
    return 0
