"""``servelab report``: the study's answers as one report (``analysis/report/``).

    servelab report --quick                  # <= 20 minutes on 2 cores, cached inputs reused
    servelab report --resume results/report-20261201-170000   # finish / extend a report

Writes ``results/report-<time>/``: ``report.html`` (self-contained), ``report.md``,
``figures/`` (PNG + the data behind each, Parquet), ``tables/``, ``summary.json`` and
``build.log``.  Exits 1 when a section failed (the report is still written, saying which).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from servelab.analysis.report.report import (
    PROFILE_HINT,
    ReportOptions,
    make_report,
    newest_profile,
)
from servelab.reproduce import command_line
from servelab.results import RESULTS_ROOT, new_run_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", type=Path, default=None,
                        help="calibrated profile (default: the newest under results/profiles/)")
    parser.add_argument("--quick", action="store_true",
                        help="the <= 20-minute cut: fewer points, shorter live runs, cached "
                        "inputs under results/report-cache/ reused")
    parser.add_argument("--sections", nargs="+", default=None, metavar="KEY",
                        help="only these sections (default: all)")
    parser.add_argument("--resume", type=Path, default=None, metavar="DIR",
                        help="continue the report in DIR: sections already built there are "
                        "reused, the others built")
    parser.add_argument("--variant", default="full", choices=("full", "tiny"),
                        help="model size of the live runs (tiny: a fast smoke report)")
    parser.add_argument("--out", type=Path, default=None,
                        help="report folder (default: results/report-<time>)")


def run(args: argparse.Namespace) -> int:
    import logging

    for name in ("servelab.loadgen", "servelab.gateway", "httpx"):  # per-run lines: the builder
        # and the sections say enough
        logging.getLogger(name).setLevel(logging.WARNING)
    if args.resume is not None and args.out is not None and args.resume != args.out:
        raise ValueError("--resume DIR is the report folder: give --resume or --out, not both")
    if args.resume is not None and not args.resume.is_dir():
        raise FileNotFoundError(f"--resume {args.resume}: no such report folder")
    profile = args.profile
    if profile is not None:
        if not profile.is_file():
            raise FileNotFoundError(f"--profile {profile}: no such file")
        note = str(profile)
    else:
        root = RESULTS_ROOT / "profiles"
        profile = newest_profile(root, args.variant)
        if profile is None:
            note = ("none found: the simulated halves use the design-doc default profile; "
                    f"make one for this machine with `{PROFILE_HINT}`")
            print(f"report: no profile under {root}/ -- the simulated halves use the design-doc "
                  f"default profile. Make one for this machine with: {PROFILE_HINT}")
        else:
            note = f"{profile} (the newest under {root}/)"
            print(f"report: profile {profile} (the newest under {root}/; --profile to choose)")
    out = args.resume or args.out or new_run_dir("report")
    cmd = command_line("report", add_arguments, args, omit=("out", "resume"))
    opts = ReportOptions(out=Path(out), command=cmd, profile=profile, profile_note=note,
                         quick=args.quick, variant=args.variant,
                         sections=tuple(args.sections or ()), resume=args.resume is not None,
                         cache=RESULTS_ROOT / "report-cache")
    print(f"report -> {out}")
    res = make_report(opts, lambda line: print(line, flush=True))
    print()
    for o in res.outcomes:
        answer = o.section.answer if o.section is not None else f"FAILED: {o.error}"
        print(f"{o.order}. {o.title}\n   {answer}")
    print(f"\nreport: {out / 'report.html'} (and report.md, summary.json); "
          f"{res.summary['timing']['wall_s']:.0f} s")
    print(f"reproduce: {cmd}")
    if res.failed:
        print(f"report: {len(res.failed)} section(s) failed: {', '.join(res.failed)} "
              f"(tracebacks in {out / 'build.log'}; --resume {out} builds only those again)")
        return 1
    return 0
