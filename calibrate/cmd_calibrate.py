"""``servelab calibrate``: measure this machine into a profile; ``show`` and ``compare`` it.

    servelab calibrate --quick                 # a few minutes; cached per machine
    servelab calibrate --out my.json           # the full calibration (up to 30 minutes)
    servelab calibrate show my.json            # a readable summary
    servelab calibrate compare a.json b.json   # repeatability: worst median disagreement

The work is :func:`servelab.calibrate.calibration.calibrate`; this module parses and prints.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from servelab.calibrate import plan as planmod
from servelab.calibrate.calibration import calibrate, compare, default_out, show
from servelab.core.profile import Profile
from servelab.reproduce import command_line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", default="run", choices=("run", "show", "compare"),
                        help="run a calibration (default), show a profile, or compare two")
    parser.add_argument("profiles", nargs="*", help="profile file(s) for show / compare")
    parser.add_argument("--quick", action="store_true",
                        help="the quick calibration (few sizes and samples; minutes, not half an hour)")
    parser.add_argument("--out", type=Path, help="profile path (default: results/profiles/<machine>-<mode>.json)")
    parser.add_argument("--models", nargs="+", default=list(planmod.MODELS), help="models to calibrate")
    parser.add_argument("--variant", default="full", choices=("full", "tiny"), help="model size")
    parser.add_argument("--kernels", nargs="+", metavar="K",
                        choices=(*planmod.KERNELS, "none"),
                        help="ffi kernels (serve --kernel) whose costs to measure too: the "
                        "service time and GIL co-run rates of the models each changes, for "
                        "simulating --kernel configurations (default: all with the full "
                        "calibration, none with --quick; 'none': none)")
    parser.add_argument("--only", nargs="+", metavar="BENCH",
                        help="measure only these benchmarks (service, interference, ipc, ...); "
                        "the profile is still built from every point measured so far under "
                        "this --out (with --fresh: only these are measured again)")
    parser.add_argument("--fresh", action="store_true", help="discard finished points and start over")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.action == "show":
        if len(args.profiles) != 1:
            raise ValueError("usage: servelab calibrate show PROFILE.json")
        print(show(Profile.load(args.profiles[0])))
        return 0
    if args.action == "compare":
        if len(args.profiles) != 2:
            raise ValueError("usage: servelab calibrate compare A.json B.json")
        worst, rows = compare(Profile.load(args.profiles[0]), Profile.load(args.profiles[1]))
        print(f"{'model@size':<22} {'A ms':>9} {'B ms':>9} {'diff':>7}")
        for key, x, y, rel in rows:
            print(f"{key:<22} {x * 1e3:>9.2f} {y * 1e3:>9.2f} {rel * 100:>6.1f}%")
        print(f"worst disagreement: {worst * 100:.1f}% (target <= 10%)")
        return 0
    if args.profiles:
        raise ValueError("profile paths go with 'show' or 'compare'; use --out to name the output")
    out = args.out or default_out(args.quick)
    cmd = command_line("calibrate", add_arguments, argparse.Namespace(**{**vars(args), "out": out}))
    t0 = time.perf_counter()
    profile, _ = calibrate(
        out, args.quick, args.models, args.variant, args.only, args.fresh,
        progress=not args.no_progress and sys.stderr.isatty(), plots=not args.no_plots,
        command=cmd, kernels=None if args.kernels is None else
        tuple(k for k in args.kernels if k != "none"),
    )
    print(show(profile))
    print(f"\nprofile: {out}  (raw samples {out.with_suffix('.samples.parquet')}, "
          f"plots {out.with_suffix('.plots')}/) in {time.perf_counter() - t0:.0f}s")
    print(f"reproduce: {cmd}")
    return 0
