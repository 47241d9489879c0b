"""The fidelity grid run: :func:`validate`, the library call behind ``servelab validate``
(:mod:`servelab.analysis.cmd_validate`), and :func:`build_grid`, the grid its flags describe."""

from __future__ import annotations

import argparse
import logging
import shlex
import time
from collections.abc import Callable
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
    Grid,
    Plan,
    curated_cells,
    fmt_duration,
    full_grid,
    product_cells,
    quick_grid,
)
from servelab.analysis.validate.runner import Runner
from servelab.analysis.validate.store import VERSION, Store
from servelab.core.profile import Profile

log = logging.getLogger(__name__)

ANALYSIS_S = 30.0
"""Seconds of a time budget kept for the analysis after the last point (attribution, plots)."""

SPLIT = ("The profile is fitted only on `servelab calibrate` measurements (its microbenchmarks "
         "and its live-server stage); no validate run feeds the fit, so every validate point is "
         "a held-out validation point and every figure is a validation figure.")


@dataclass
class Validation:
    points: pd.DataFrame
    figures: dict[str, Any]
    attribution: list[dict[str, Any]]
    summary: dict[str, Any]
    out: Path


def validate(grid: Grid, profile: Profile, out: Path, backend: Backend | None = None,
             attribute: int = 3, command: str = "", profile_path: str | None = None,
             say: Callable[[str], None] = print, budget_s: float | None = None,
             resimulate: bool = False) -> Validation:
    """Run (or resume) ``grid`` into ``out`` and write its figures.  With ``budget_s`` the run
    stops before the work that would overrun it (figures over the points measured so far;
    resume to finish); with ``resimulate`` every stored point is simulated again (after a
    change to the simulator: the same live points against the new code)."""
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
    runner.resim_all = resimulate
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
        "kind": "validate", "version": VERSION, "split": SPLIT, **run_metadata(command),
        "resume": f"servelab validate --resume {shlex.quote(str(out))}",
        "profile": {"digest": profile.digest, "source": profile.machine.source,
                    "path": profile_path, "measured": profile.machine.date},
        "complete": not runner.stopped, "stopped": runner.stopped,
        "grid": grid.to_dict(), "c_ref": c_ref,
        "capacities": {c: {wl: {k: v for k, v in x.items() if k != "steps"}
                           for wl, x in d.items()} for c, d in runner.caps.items()},
        "speed": speed_summary(runner, points), **figs, "attribution": attribution,
        "files": files,
        "timing": {"wall_s": time.perf_counter() - t0,
                   "server_start_s": runner.start_times},
    }
    write_json(out / "summary.json", summary)
    return Validation(points, figs, attribution, summary, out)


def speed_summary(runner: Runner, points: pd.DataFrame) -> dict[str, Any]:
    """The machine's speed over the run against the profile's reference: per probe item,
    the factors the points were simulated with (> 1: slower than when calibrated)."""
    cols = sorted(c for c in points.columns if c.startswith("speed_")) if not points.empty else []
    return {
        "rescaled": runner.ref is not None,
        "why_not": "" if runner.ref is not None else (
            "off by default; --rescale probes before each point" if not runner.grid.rescale else
            "the profile has no speed reference (calibrated before servelab recorded one)"),
        "reference": runner.ref.to_dict() if runner.ref is not None else None,
        "factors": {c[len("speed_"):]: {"median": float(points[c].median()),
                                        "min": float(points[c].min()),
                                        "max": float(points[c].max())} for c in cols},
    }


def format_speed(speed: dict[str, Any]) -> str:
    """One line on the machine's speed during the run."""
    if not speed["rescaled"]:
        return f"machine speed: not rescaled ({speed['why_not']})"
    items = ", ".join(f"{k} x{v['median']:.2f} ({v['min']:.2f}-{v['max']:.2f})"
                      for k, v in speed["factors"].items())
    return ("machine speed vs calibration, per point (median, range; > 1 slower), each point "
            f"simulated at its own: {items or 'no point measured'}")


# -- the command ----------------------------------------------------------------------------


GRID_FLAGS = ("workloads", "loads", "duration", "warmup", "ladder_step_s", "ladder_warmup_s",
              "ladder_steps", "server_warmup_s", "repeats", "repeat_cells", "sim_seeds", "seed",
              "variant", "kernel", "rescale")


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
