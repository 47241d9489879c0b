"""Building a report's sections, in order, resumably.

Each section runs in turn (progress: which section, its time, the report's elapsed time) and is
stored as it finishes under ``<out>/sections/<key>/`` (:mod:`~servelab.analysis.report.store`).
With ``resume`` a section already stored there is reused, not rebuilt.  A section that raises
is recorded as failed — its traceback goes to ``<out>/build.log``, the report says so — and the
others still run.  Everything the builder says goes to ``<out>/build.log`` as well as to
``ctx.log``.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from servelab.analysis.report import store
from servelab.analysis.report.section import Context, Section
from servelab.analysis.report.sections import SectionSpec

QUICK_BUDGET_S = 240.0
"""What one section may take in a ``--quick`` report (six sections in under 20 minutes)."""


@dataclass
class Outcome:
    """What became of one section."""

    key: str
    title: str
    order: int
    status: str  # "built" | "reused" | "failed"
    seconds: float = 0.0
    section: Section | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("built", "reused")


def section_dir(out: Path, key: str) -> Path:
    return out / "sections" / key


def fmt_s(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"


class BuildLog:
    """Says a line to ``say`` and appends it to ``path``."""

    def __init__(self, path: Path, say: Callable[[str], None]) -> None:
        self.path = path
        self.say = say
        path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, line: str) -> None:
        self.say(line)
        self.write(line)

    def write(self, text: str) -> None:
        with self.path.open("a") as f:
            f.write(text.rstrip("\n") + "\n")


def build_sections(specs: Sequence[SectionSpec], ctx: Context, resume: bool = False,
                   clock: Callable[[], float] = time.perf_counter) -> list[Outcome]:
    """Run (or, with ``resume``, reuse) every section of ``specs`` in order."""
    log = BuildLog(ctx.out / "build.log", ctx.log)
    sctx = replace(ctx, log=log)
    t0 = clock()
    outcomes: list[Outcome] = []
    for i, spec in enumerate(specs, 1):
        folder = section_dir(ctx.out, spec.key)
        head = f"[{i}/{len(specs)}] {spec.order}. {spec.key}: {spec.title}"
        if resume and (folder / "section.json").is_file():
            try:
                section, meta = store.load(folder)
            except (OSError, ValueError, KeyError) as exc:
                log(f"{head}: stored copy unusable ({exc}); building it again")
            else:
                outcomes.append(Outcome(spec.key, spec.title, spec.order, "reused",
                                        float(meta.get("seconds", 0.0)), section))
                log(f"{head}: reused from {folder} (built in {fmt_s(outcomes[-1].seconds)})")
                continue
        log(f"{head} (report elapsed {fmt_s(clock() - t0)})")
        start = clock()
        try:
            built = spec.build(sctx)
            if not isinstance(built, Section):
                raise TypeError(f"build() returned {type(built).__name__}, not a Section")
            seconds = clock() - start
            section = store.save(built, folder, spec.order, seconds)
        except Exception as exc:
            seconds = clock() - start
            error = f"{type(exc).__name__}: {exc}"
            log(f"  {spec.key}: FAILED after {fmt_s(seconds)}: {error} (traceback in "
                f"{log.path})")
            log.write(traceback.format_exc())
            outcomes.append(Outcome(spec.key, spec.title, spec.order, "failed", seconds,
                                    None, error))
            continue
        over = ctx.quick and seconds > QUICK_BUDGET_S
        log(f"  {spec.key}: built in {fmt_s(seconds)}"
            + (f" (over its quick budget of {fmt_s(QUICK_BUDGET_S)})" if over else ""))
        outcomes.append(Outcome(spec.key, spec.title, spec.order, "built", seconds, section))
    return outcomes
