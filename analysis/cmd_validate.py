"""``servelab validate``: the simulator's fidelity grid (:func:`servelab.analysis.validate.
validation.validate` does the work; this module parses, resumes and prints)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import textwrap
from collections.abc import Callable
from pathlib import Path

from servelab.analysis.validate import report as R
from servelab.analysis.validate.grid import SCHEDULERS, SETUPS, WORKERS, WORKLOADS
from servelab.analysis.validate.store import Store
from servelab.analysis.validate.validation import (
    ANALYSIS_S,
    GRID_FLAGS,
    SPLIT,
    build_grid,
    format_speed,
    validate,
)
from servelab.core.config import KERNELS
from servelab.core.profile import load_profile

log = logging.getLogger(__name__)


DESCRIPTION = """\
The simulator's fidelity grid: each configuration served live and simulated on the same
workload, seed and rate, point by point.

Grid: setups (threads; processes; async with inline / thread / process offload) x pool sizes
(1, 2, 4) x schedulers (fifo, sjf, mlfq) x the shipped workloads (fast-only, mixed, slow-only,
bursty) x load levels (0.5, 0.8, 0.95 and 1.3, above capacity).  By default every setup runs at
every pool size under fifo and at pool size 2 under each other scheduler (--product: the full
product).  The live capacity of each setup and pool size per workload comes from a short
open-loop ladder on its FIFO server started at the simulated capacity (the scheduler reorders
work, it does not add any); each workload's reference capacity C_ref is the median live
capacity over the grid, and every configuration at level f is offered the same rate f x C_ref
(so configurations are ranked at one rate; weaker ones saturate).  A point's own load is the
rate over its own live capacity.  Simulated figures average --sim-seeds seeds.

Split: {split}

Targets (on points at own load <= 80%): p50 and throughput within 15% and p99 within 25% on
>= 80% of the points; per workload, Spearman rank correlation of reward (throughput / (1 + p99
s)) >= 0.8 over the load levels where live rewards differ by more than their run-to-run noise
(measured with --repeats), and the simulator's top pick >= 95% of the live-best reward; above
capacity, sim and live agree on which configurations saturate.  For the worst points, the
error attribution says which profile parameter family would have to change, by how much.

--quick (<= 15 minutes on 2 cores): every setup at pool size 2 under fifo, plus sjf and pool
sizes 1 and 4 on the first setup; fast-only and mixed; loads 0.5 and 0.8; 8 s points after 2 s
of warm-up; a 15-minute budget (--budget), past which the run stops resumably.
Output: results/validate-<time>/ (points.parquet, summary.json, scatter.png, ranks.png);
the run is resumable: --resume DIR skips the points already there.
""".format(split=textwrap.fill(SPLIT, 95, subsequent_indent=""))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--profile", help="calibrated profile (servelab calibrate); default: "
                        "the design-doc profile, which is not a calibration of this machine")
    parser.add_argument("--quick", action="store_true", help="the <= 15 minute subset")
    g = parser.add_argument_group("cutting the grid (default: the full grid, or --quick's)")
    g.add_argument("--setups", nargs="+", choices=tuple(SETUPS))
    g.add_argument("--workers", nargs="+", type=int, metavar="N",
                   help=f"pool sizes (full: {' '.join(map(str, WORKERS))})")
    g.add_argument("--schedulers", nargs="+", choices=SCHEDULERS)
    g.add_argument("--product", action="store_true",
                   help="every setup x pool size x scheduler (default: see above)")
    g.add_argument("--workloads", nargs="+", metavar="W",
                   help=f"shipped workloads (full: {' '.join(WORKLOADS)})")
    g.add_argument("--loads", nargs="+", type=float, metavar="F",
                   help="levels, fractions of the reference capacity (> 1: above capacity)")
    g.add_argument("--duration", type=float, metavar="S", help="seconds per point, after the warm-up")
    g.add_argument("--warmup", type=float, metavar="S", help="seconds of warm-up per point")
    g.add_argument("--ladder-step", type=float, dest="ladder_step_s", metavar="S",
                   help="seconds per capacity-ladder step")
    g.add_argument("--ladder-warmup", type=float, dest="ladder_warmup_s", metavar="S",
                   help="seconds of warm-up per ladder step")
    g.add_argument("--ladder-steps", type=int, metavar="N", help="most steps per ladder")
    g.add_argument("--server-warmup", type=float, dest="server_warmup_s", metavar="S",
                   help="seconds of unrecorded load after each server start")
    g.add_argument("--repeats", type=int, metavar="N", help="runs of each repeated point (1 = no noise "
                   "estimate; quick: 2)")
    g.add_argument("--repeat-configs", type=int, dest="repeat_cells", metavar="N",
                   help="configurations per workload whose points are repeated")
    g.add_argument("--sim-seeds", type=int, metavar="N", help="simulated seeds averaged per point")
    g.add_argument("--seed", type=int, help="base seed of the arrivals")
    g.add_argument("--variant", choices=("full", "tiny"), help="model size served live "
                   "(tiny: a fast smoke run)")
    g.add_argument("--kernel", choices=KERNELS, help="the ffi kernel every configuration "
                   "serves on (serve --kernel; simulated on the profile's costs for it: "
                   "calibrate --kernels)")
    parser.add_argument("--rescale", action=argparse.BooleanOptionalAction, default=None,
                        help="take a speed probe (about 1 s) before each point and simulate it "
                        "with the profile rescaled to the machine's speed then (needs a profile "
                        "with a reference probe; off by default: on this machine a short probe "
                        "did not represent the point and doubled the median p50 error); with "
                        "--resume --resimulate: whether to apply the stored probes")
    parser.add_argument("--attribute", type=int, default=3, metavar="N",
                        help="error attribution for this many worst points (0: none)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="results folder (default: results/validate-*)")
    parser.add_argument("--resume", type=Path, metavar="DIR",
                        help="continue the run in DIR (its grid; points already there are kept)")
    parser.add_argument("--resimulate", action="store_true",
                        help="with --resume: simulate every stored point again (after a change "
                        "to the simulator; a new --profile alone re-simulates already)")
    parser.add_argument("--budget", type=float, metavar="MIN",
                        help="stop (resumably) before work that would run past MIN minutes "
                        "(default: 15 with --quick, none otherwise)")
    parser.add_argument("--no-progress", action="store_true", help="no line per point")


def command_line(args: argparse.Namespace) -> str:
    """``servelab validate`` with the flags given (the run folder, resuming, progress and the
    time budget left out)."""
    from servelab.reproduce import command_line as line

    return line("validate", add_arguments, args,
                omit=("out", "resume", "resimulate", "no_progress", "budget"))


def run(args: argparse.Namespace) -> int:
    from servelab.results import new_run_dir

    say: Callable[[str], None] = (lambda s: None) if args.no_progress else (
        lambda s: print(s, flush=True))
    if not log.isEnabledFor(logging.DEBUG):  # one line per point is ours; not one per load run
        logging.getLogger("servelab.loadgen").setLevel(logging.WARNING)
    resimulate = args.resimulate
    if args.resume:
        store = Store(args.resume)
        grid = store.grid()
        if grid is None:
            raise FileNotFoundError(f"{args.resume}: no grid.json (not a validate run folder)")
        given = [k for k in GRID_FLAGS if getattr(args, k, None) is not None and k != "rescale"]
        if given or args.quick or args.setups or args.workers or args.schedulers:
            print(f"--resume: the run's own grid is used; ignoring {given or 'the grid flags'}")
        import json

        meta = json.loads((args.resume / "grid.json").read_text())
        if args.rescale is not None and args.rescale != grid.rescale:
            # a choice of the simulated side only: the live points stay as measured
            grid = dataclasses.replace(grid, rescale=args.rescale)
            store.save_grid(grid, **{k: v for k, v in meta.items() if k != "grid"})
            resimulate = True
        profile_path = args.profile or meta.get("profile_path")
        command = meta.get("command", "")
        out = args.resume
    else:
        grid = build_grid(args)
        profile_path = args.profile
        command = command_line(args)
        out = args.out or new_run_dir("validate")
    profile = load_profile(profile_path)
    if profile_path is None:
        print("no --profile: using the design-doc default profile (not a calibration of this "
              "machine; run servelab calibrate first for real figures)")
    budget = args.budget if args.budget is not None else (15.0 if args.quick else None)
    res = validate(grid, profile, out, attribute=args.attribute, command=command,
                   profile_path=profile_path, say=say, resimulate=resimulate,
                   budget_s=budget * 60 - ANALYSIS_S if budget else None)
    if res.points.empty:
        print(f"no point measured ({res.summary['stopped'] or 'empty grid'}); "
              f"resume: {res.summary['resume']}")
        return 1
    print()
    print(R.format_points(res.points))
    print()
    print(format_speed(res.summary["speed"]))
    print()
    print(R.format_workloads(res.figures))
    print()
    print(R.format_attribution(res.attribution))
    print()
    print(R.format_targets(res.figures, command))
    if res.summary["stopped"]:
        print(f"\nINCOMPLETE: {res.summary['stopped']} (figures over the points measured)")
    print(f"\n{SPLIT}\nresults in {out}; resume or re-simulate: {res.summary['resume']}")
    return 0
