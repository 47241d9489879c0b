"""``servelab validate``: the command, and :func:`validate`, the library call behind it."""

from __future__ import annotations

import argparse
import logging
import shlex
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from servelab.analysis.validate import report as R
from servelab.analysis.validate.backend import Backend, ServerBackend
from servelab.analysis.validate.grid import (
    SCHEDULERS,
    SETUPS,
    WORKERS,
    WORKLOADS,
    Grid,
    Plan,
    curated_cells,
    fmt_duration,
    full_grid,
    product_cells,
    quick_grid,
)
from servelab.analysis.validate.runner import Runner
from servelab.analysis.validate.store import Store
from servelab.core.profile import Profile, load_profile

log = logging.getLogger(__name__)

ANALYSIS_S = 30.0
"""Seconds of a time budget kept for the analysis after the last point (attribution, plots)."""

SPLIT = ("The profile is fitted only on `servelab calibrate` measurements (its microbenchmarks "
         "and its live-server stage); no validate run feeds the fit, so every validate point is "
         "a held-out validation point and every figure is a validation figure.")

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


@dataclass
class Validation:
    points: pd.DataFrame
    figures: dict[str, Any]
    attribution: list[dict[str, Any]]
    summary: dict[str, Any]
    out: Path


def validate(grid: Grid, profile: Profile, out: Path, backend: Backend | None = None,
             attribute: int = 3, command: str = "", profile_path: str | None = None,
             say: Callable[[str], None] = print, budget_s: float | None = None) -> Validation:
    """Run (or resume) ``grid`` into ``out`` and write its figures.  With ``budget_s`` the run
    stops before the work that would overrun it (figures over the points measured so far;
    resume to finish)."""
    from servelab.analysis.validate.plots import plot_ranks, plot_scatter
    from servelab.reproduce import run_metadata
    from servelab.results import write_json

    out.mkdir(parents=True, exist_ok=True)
    store = Store(out)
    if store.grid() is None:
        store.save_grid(grid, profile_path=profile_path, command=command)
    backend = backend if backend is not None else ServerBackend(grid.variant, grid.timeout_s)
    plan = Plan.of(grid)
    say(f"validate: {len(grid.cells)} configurations x {len(grid.workloads)} workloads x "
        f"{len(grid.loads)} loads = {plan.points} live points (with repeats), about "
        f"{fmt_duration(plan.seconds)} here; results in {out}")
    t0 = time.perf_counter()
    runner = Runner(grid, profile, backend, store, say=say, log_dir=out, budget_s=budget_s)
    points = runner.run()
    figs = R.figures(points) if not points.empty else {}
    attribution = (R.attribute_worst(runner, points, attribute)
                   if attribute > 0 and not points.empty else [])
    files = {"points": "points.parquet"} if not points.empty else {}
    for name, fn in (("scatter", plot_scatter), ("ranks", plot_ranks)):
        if not points.empty and fn(points, out / f"{name}.png") is not None:
            files[name] = f"{name}.png"
    try:
        c_ref = runner.c_ref()
    except KeyError:  # stopped before every capacity was measured
        c_ref = {}
    summary = {
        "kind": "validate", "split": SPLIT, **run_metadata(command),
        "resume": f"servelab validate --resume {shlex.quote(str(out))}",
        "profile": {"digest": profile.digest, "source": profile.machine.source,
                    "path": profile_path, "measured": profile.machine.date},
        "complete": not runner.stopped, "stopped": runner.stopped,
        "grid": grid.to_dict(), "c_ref": c_ref,
        "capacities": {c: {wl: {k: v for k, v in x.items() if k != "steps"}
                           for wl, x in d.items()} for c, d in runner.caps.items()},
        **figs, "attribution": attribution, "files": files,
        "timing": {"wall_s": time.perf_counter() - t0,
                   "server_start_s": runner.start_times},
    }
    write_json(out / "summary.json", summary)
    return Validation(points, figs, attribution, summary, out)


# -- the command ----------------------------------------------------------------------------


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
    parser.add_argument("--attribute", type=int, default=3, metavar="N",
                        help="error attribution for this many worst points (0: none)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="results folder (default: results/validate-*)")
    parser.add_argument("--resume", type=Path, metavar="DIR",
                        help="continue the run in DIR (its grid; points already there are kept)")
    parser.add_argument("--budget", type=float, metavar="MIN",
                        help="stop (resumably) before work that would run past MIN minutes "
                        "(default: 15 with --quick, none otherwise)")
    parser.add_argument("--no-progress", action="store_true", help="no line per point")


GRID_FLAGS = ("workloads", "loads", "duration", "warmup", "ladder_step_s", "ladder_warmup_s",
              "ladder_steps", "server_warmup_s", "repeats", "repeat_cells", "sim_seeds", "seed",
              "variant")


def build_grid(args: argparse.Namespace) -> Grid:
    """The grid the flags describe: --quick's or the full one, cut by the flags given."""
    kw = {k: getattr(args, k) for k in GRID_FLAGS if getattr(args, k, None) is not None}
    for k in ("workloads", "loads"):
        if k in kw:
            kw[k] = tuple(kw[k])
    setups = tuple(args.setups or SETUPS)
    if args.quick and not (args.workers or args.schedulers or args.product):
        return quick_grid(setups, **kw)
    workers = tuple(args.workers or ((2,) if args.quick else WORKERS))
    schedulers = tuple(args.schedulers or (("fifo",) if args.quick else SCHEDULERS))
    if args.quick:
        cells = (product_cells if args.product else curated_cells)(setups, workers, schedulers)
        return quick_grid(setups, cells=cells, **kw)
    return full_grid(setups, workers, schedulers, product=args.product, **kw)


def command_line(args: argparse.Namespace) -> str:
    """``servelab validate`` with the flags given (the run folder, resuming, progress and the
    time budget left out)."""
    from servelab.reproduce import command_line as line

    return line("validate", add_arguments, args,
                omit=("out", "resume", "no_progress", "budget"))


def run(args: argparse.Namespace) -> int:
    from servelab.results import new_run_dir

    say: Callable[[str], None] = (lambda s: None) if args.no_progress else (
        lambda s: print(s, flush=True))
    if not log.isEnabledFor(logging.DEBUG):  # one line per point is ours; not one per load run
        logging.getLogger("servelab.loadgen").setLevel(logging.WARNING)
    if args.resume:
        store = Store(args.resume)
        grid = store.grid()
        if grid is None:
            raise FileNotFoundError(f"{args.resume}: no grid.json (not a validate run folder)")
        given = [k for k in GRID_FLAGS if getattr(args, k, None) is not None]
        if given or args.quick or args.setups or args.workers or args.schedulers:
            print(f"--resume: the run's own grid is used; ignoring {given or 'the grid flags'}")
        import json

        meta = json.loads((args.resume / "grid.json").read_text())
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
                   profile_path=profile_path, say=say,
                   budget_s=budget * 60 - ANALYSIS_S if budget else None)
    if res.points.empty:
        print(f"no point measured ({res.summary['stopped'] or 'empty grid'}); "
              f"resume: {res.summary['resume']}")
        return 1
    print()
    print(R.format_points(res.points))
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="servelab validate")
    add_arguments(parser)
    return run(parser.parse_args(argv))
