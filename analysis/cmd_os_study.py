"""``servelab os-study``: the OS study on this machine (:mod:`servelab.analysis.os_study`) —
context switches and CPU vs wall time per concurrency model, IPC vs payload, start cost,
memory and copy-on-write, locks and the deadlock watchdog, the GIL, starvation, cache effects,
CPU affinity.  Writes ``results/os-study-<time>/``: ``<name>.parquet`` per measurement,
``<name>.png``, ``summary.json`` (every number with the command that reproduces it), and prints
each number with that command."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from servelab.analysis.os_study import FRAME_VERSION, MEASUREMENTS, command, run_one


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="shorter runs, fewer repeats and sizes (about 4 minutes)")
    parser.add_argument("--variant", choices=("full", "tiny"), default="full",
                        help="model variant served and measured (tiny: a fast smoke run)")
    parser.add_argument("--only", nargs="+", choices=list(MEASUREMENTS), metavar="NAME",
                        help=f"measurements to run (default all: {', '.join(MEASUREMENTS)})")
    parser.add_argument("--profile", default=None,
                        help="calibrated profile for the simulated starvation figure "
                        "(default: the design's default profile)")
    parser.add_argument("--out", default=None, help="output folder (default results/os-study-*)")


def run(args: argparse.Namespace) -> int:
    from servelab.analysis.os_study.claims import claim, numbers
    from servelab.analysis.os_study.figures import plot
    from servelab.analysis.os_study.live import quiet_file
    from servelab.machine import machine_metadata
    from servelab.reproduce import run_metadata
    from servelab.results import new_run_dir, write_json, write_parquet

    names = list(args.only or MEASUREMENTS)
    out = Path(args.out) if args.out else new_run_dir("os-study")
    out.mkdir(parents=True, exist_ok=True)
    machine = machine_metadata()
    quiet = quiet_file()
    print(f"os-study on {machine['cores']} CPUs ({machine['cpu_model']}), load average "
          f"{os.getloadavg()[0]:.2f}" + (f"; live runs wait while {quiet} exists" if quiet else "")
          + f" -> {out}")
    summary: dict[str, Any] = {**run_metadata(command(names, args.quick, args.variant,
                                                           args.profile), machine),
                               "version": FRAME_VERSION, "measurements": {}}
    t0 = time.perf_counter()
    for name in names:
        m = MEASUREMENTS[name]
        over: dict[str, Any] = {}
        if name == "sched" and args.profile:
            over["profile"] = Path(args.profile)
        print(f"\n[{name}] {m.what} ...", flush=True)
        df = run_one(name, args.quick, args.variant, **over)
        write_parquet(out / f"{name}.parquet", df)
        plot(name, df, out / f"{name}.png", m.what)
        cmd = command([name], args.quick, args.variant, args.profile)
        nums = numbers(name, df)
        for label, value, unit in nums:
            print(f"  {label:<48} {value:>12.4g} {unit:<12} # {cmd}")
        text = claim(name, df)
        print(f"  => {text}")
        summary["measurements"][name] = {
            "what": m.what, "sections": list(m.sections), "command": cmd, "claim": text,
            "wall_s": float(df["run_wall_s"].iloc[0]),
            "load1": [float(df["run_load1_before"].iloc[0]), float(df["run_load1_after"].iloc[0])],
            "numbers": [{"label": k, "value": v, "unit": u} for k, v, u in nums],
            "parquet": f"{name}.parquet", "png": f"{name}.png"}
        write_json(out / "summary.json", summary)
    summary["wall_s"] = time.perf_counter() - t0
    write_json(out / "summary.json", summary)
    print(f"\nos-study: {len(names)} measurements in {summary['wall_s']:.0f} s -> {out}")
    return 0
