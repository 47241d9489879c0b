"""``servelab gil-study``: thread vs process scaling of each kernel variant
(:func:`servelab.analysis.gil_study.run_study`); prints the table, writes ``gil_study.parquet``,
``summary.json`` and ``gil_study.png``."""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict
from typing import Any

from servelab.analysis.gil_study import (
    MODES,
    OPS,
    StudyConfig,
    format_table,
    plot,
    run_study,
    summary_table,
)
from servelab.ffi.kernels import KERNELS
from servelab.machine import machine_metadata
from servelab.reproduce import command_line, run_metadata


# -- command --------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = StudyConfig()
    parser.add_argument("--variants", nargs="+", choices=KERNELS, default=list(d.variants),
                        help="kernel variants (default: all)")
    parser.add_argument("--ops", nargs="+", choices=OPS, default=list(d.ops),
                        help="operations: the lstm_forecaster forward pass, the mobilenet_v2 "
                        "image preprocessing (default: lstm)")
    parser.add_argument("--workers", nargs="+", type=int, default=list(d.workers),
                        help="worker counts (default: 1 2 4 8)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(d.modes),
                        help="threads in one process and/or single-threaded processes")
    parser.add_argument("--duration", type=float, default=None,
                        help=f"measured seconds per point (default {d.duration_s}, quick 0.5)")
    parser.add_argument("--warmup", type=float, default=None,
                        help=f"warm-up seconds per worker (default {d.warmup_s}, quick 0.1)")
    parser.add_argument("--lookback", type=int, default=d.lookback,
                        help="lstm: window length (default %(default)s)")
    parser.add_argument("--batch", type=int, default=d.batch,
                        help="lstm: windows per call (default %(default)s)")
    parser.add_argument("--images", type=int, default=d.images,
                        help="preprocess: 32x32 images per call (default %(default)s)")
    parser.add_argument("--model-variant", choices=("full", "tiny"), default=d.model_variant,
                        help="lstm_forecaster variant whose weights are used")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--repeat", type=int, default=d.repeat,
                        help="repeat every point; tables show the median (default 1)")
    parser.add_argument("--quick", action="store_true",
                        help="short points (0.5 s, 0.1 s warm-up): a fast, noisier run")
    parser.add_argument("--out", default=None, help="output folder (default results/gil-study-*)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG plot")


def config_from_args(args: argparse.Namespace) -> StudyConfig:
    duration = args.duration if args.duration is not None else (0.5 if args.quick else 2.0)
    warmup = args.warmup if args.warmup is not None else (0.1 if args.quick else 0.3)
    if duration <= 0 or warmup < 0 or args.repeat < 1:
        raise ValueError("duration must be > 0, warmup >= 0, repeat >= 1")
    if any(w < 1 for w in args.workers):
        raise ValueError("worker counts must be >= 1")
    if args.lookback < 1 or args.batch < 1 or args.images < 1:
        raise ValueError("lookback, batch and images must be >= 1")
    return StudyConfig(
        variants=tuple(args.variants), ops=tuple(args.ops), workers=tuple(args.workers),
        modes=tuple(args.modes), duration_s=duration, warmup_s=warmup, lookback=args.lookback,
        batch=args.batch, images=args.images, model_variant=args.model_variant, seed=args.seed,
        repeat=args.repeat,
    )


def reproduce_command(args: argparse.Namespace, cfg: StudyConfig) -> str:
    """The command line that repeats this study (durations resolved, the folder left out)."""
    resolved = argparse.Namespace(**{**vars(args), "duration": cfg.duration_s,
                                     "warmup": cfg.warmup_s})
    return command_line("gil-study", add_arguments, resolved, omit=("out", "no_plot"))


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from servelab.ffi.kernels import compiled_available
    from servelab.results import new_run_dir, write_json, write_parquet

    cfg = config_from_args(args)
    # Single-threaded BLAS/OpenMP in every worker: oversubscription is the variable under study.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    out = Path(args.out) if args.out else new_run_dir("gil-study")
    out.mkdir(parents=True, exist_ok=True)
    machine = machine_metadata()
    builds = compiled_available()
    command = reproduce_command(args, cfg)
    n_points = len(cfg.ops) * len(cfg.variants) * len(cfg.modes) * len(cfg.workers) * cfg.repeat
    note = (f"machine: {machine['cores']} usable CPUs ({machine['cpu_model']}), shared with "
            "other jobs: absolute numbers drift with their load (load average recorded per "
            f"point); N > {machine['cores']} measures oversubscription.")
    print(note)
    load_start = os.getloadavg()
    if load_start[0] > machine["cores"] - 1:
        print(f"  busy now: load average {load_start[0]:.2f} on {machine['cores']} CPUs -- "
              "other jobs hold CPUs, so neither threads nor processes can show full scaling; "
              "compare the two modes point by point, and the context switches")
    for name, status in builds.items():
        print(f"  {name}: {status}")
    print(f"{n_points} points x ~{cfg.duration_s + cfg.warmup_s:.1f} s + process start ...")

    def progress(i: int, n: int, row: dict[str, Any]) -> None:
        print(f"  [{i:>3}/{n}] {row['op']:<10} {row['variant']:<9} {row['mode']:<9} "
              f"N={row['workers']:<2} {row['calls_per_s']:>9.1f} calls/s  "
              f"cpu/wall {row['cpu_per_wall']:.2f}", flush=True)

    df = run_study(cfg, progress)
    load_end = os.getloadavg()
    fallback = sorted(set(df.loc[df.variant != df.kernel_actual, "variant"]))
    write_parquet(out / "gil_study.parquet", df)
    table = format_table(df)
    summary = {
        "kind": "gil-study",
        **run_metadata(command, machine),
        "config": asdict(cfg),
        "compiled_builds": builds,
        "fallback_variants": fallback,
        "loadavg_start": load_start,
        "loadavg_end": load_end,
        "note": note,
        "table": summary_table(df).to_dict(orient="records"),
    }
    write_json(out / "summary.json", summary)
    if not args.no_plot:
        plot(df, out / "gil_study.png", machine)
    print()
    print(table)
    print()
    print(f"speedup = calls/s over N=1 of the same variant and mode; eff = speedup / N; "
          f"cpu/wall = cores kept busy (getrusage); vcsw / ivcsw = voluntary / involuntary "
          f"context switches in the {cfg.duration_s:g} s window; others = cores busy with "
          "other jobs during the points (/proc/stat, mean of the two modes).")
    print(f"load average (1, 5, 15 min): start {load_start[0]:.2f} {load_start[1]:.2f} "
          f"{load_start[2]:.2f}, end {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}")
    if fallback:
        print(f"WARNING: no compiled build for {', '.join(fallback)}: measured the NumPy "
              "fallback instead (see the log)")
    print(f"results: {out}")
    print(f"reproduce: {command}")
    return 0
