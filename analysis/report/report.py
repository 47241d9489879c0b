"""One report end to end: find the sections, build them (resumably), render the files.

``make_report(options)`` is what ``servelab report`` runs; :func:`newest_profile` is how it
picks a profile when none is given.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servelab.analysis.report.build import Outcome, build_sections
from servelab.analysis.report.render import ReportInfo, render
from servelab.analysis.report.section import Context
from servelab.analysis.report.sections import SectionSpec, discover, select

PROFILE_HINT = "servelab calibrate --quick"


def newest_profile(root: Path, variant: str = "full") -> Path | None:
    """The most recently written profile under ``root`` (``results/profiles/``) for the model
    ``variant`` (``*-tiny.json`` for tiny, the others for full); None when there is none."""
    if not root.is_dir():
        return None
    found = [p for p in root.glob("*.json") if not p.name.endswith(".summary.json")]
    tiny = [p for p in found if p.stem.endswith("-tiny")]
    pick = tiny if variant == "tiny" else [p for p in found if p not in tiny]
    return max(pick, key=lambda p: p.stat().st_mtime, default=None)


@dataclass
class ReportOptions:
    out: Path
    command: str
    profile: Path | None
    profile_note: str
    quick: bool = False
    variant: str = "full"
    sections: tuple[str, ...] = ()
    resume: bool = False
    cache: Path = Path("results/report-cache")


@dataclass
class ReportResult:
    out: Path
    outcomes: list[Outcome]
    summary: dict[str, Any]

    @property
    def failed(self) -> list[str]:
        return [o.key for o in self.outcomes if not o.ok]


def make_report(opts: ReportOptions, say: Callable[[str], None],
                specs: list[SectionSpec] | None = None,
                machine: dict[str, Any] | None = None) -> ReportResult:
    """Build and render the report ``opts`` describes (``specs``: the sections, default those
    :func:`~servelab.analysis.report.sections.discover` finds)."""
    from servelab.machine import load_average, machine_metadata

    t0 = time.perf_counter()
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    notes: list[str] = []
    if specs is None:
        specs, notes = discover()
    chosen = select(specs, list(opts.sections) or None)
    machine = machine if machine is not None else machine_metadata()
    opts.out.mkdir(parents=True, exist_ok=True)
    ctx = Context(out=opts.out, quick=opts.quick, profile=opts.profile, machine=machine,
                  cache=opts.cache, variant=opts.variant, log=say)
    for n in notes:
        say(f"note: {n}")
    outcomes = build_sections(chosen, ctx, resume=opts.resume)
    info = ReportInfo(command=opts.command, machine=machine, profile=opts.profile_note,
                      quick=opts.quick, variant=opts.variant, started_at=started,
                      wall_s=time.perf_counter() - t0, loadavg_end=load_average(), notes=notes)
    summary = render(opts.out, outcomes, info)
    return ReportResult(opts.out, outcomes, summary)
