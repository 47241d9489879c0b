"""The report's sections: which modules, in which order, and how they are found.

:data:`MODULES` names the section modules of this package (``sec_<key>``).  Adding a section is
one line here; a listed module that is not there (yet) is skipped with a note in the report, and
any other ``sec_*.py`` file in this folder is picked up too.  A module is a section when it
defines ``KEY``, ``TITLE``, ``ORDER`` (the section number: the report is sorted by it) and
``build(ctx) -> Section``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from servelab.analysis.report.section import Context, Section

PACKAGE = "servelab.analysis.report"
MODULES: tuple[str, ...] = (
    "sec_gil",      # 1. When does the GIL make threads slower than processes?
    "sec_ctxsw",    # 2. Context-switch overhead, threads vs processes
    "sec_predict",  # 3. Predicting the best concurrency model
    "sec_sched",    # 4. Schedulers x concurrency
    "sec_meta",     # 5. Meta-scheduler vs static configuration
    "sec_os",       # 6. The seed's table of OS concepts
)


@dataclass(frozen=True)
class SectionSpec:
    """One section as the builder sees it."""

    key: str
    title: str
    order: int
    build: Callable[[Context], Section]
    module: str = ""


def from_module(module: ModuleType | Any) -> SectionSpec:
    """The section a module (or any object with the same attributes) defines."""
    missing = [a for a in ("KEY", "TITLE", "ORDER", "build") if not hasattr(module, a)]
    if missing:
        raise ValueError(f"{getattr(module, '__name__', module)!r} is not a report section: "
                         f"no {', '.join(missing)}")
    return SectionSpec(key=str(module.KEY), title=str(module.TITLE), order=int(module.ORDER),
                       build=module.build, module=str(getattr(module, "__name__", "")))


def _unlisted(listed: Iterable[str]) -> list[str]:
    here = Path(__file__).parent
    known = set(listed)
    return sorted(p.stem for p in here.glob("sec_*.py") if p.stem not in known)


def discover(modules: Sequence[str] | None = None) -> tuple[list[SectionSpec], list[str]]:
    """The sections found (sorted by ORDER), and a note per listed module that is missing or
    broken (``modules``: names in this package; default :data:`MODULES` plus any unlisted
    ``sec_*.py``)."""
    names = list(modules) if modules is not None else [*MODULES, *_unlisted(MODULES)]
    specs: list[SectionSpec] = []
    notes: list[str] = []
    for name in names:
        dotted = name if "." in name else f"{PACKAGE}.{name}"
        try:
            mod = importlib.import_module(dotted)
        except ModuleNotFoundError as exc:
            if exc.name != dotted:
                notes.append(f"section module {name} could not be imported: {exc}")
            else:
                notes.append(f"section module {name} is not there yet: skipped")
            continue
        except Exception as exc:  # a broken module must not stop the other sections
            notes.append(f"section module {name} failed to import: {type(exc).__name__}: {exc}")
            continue
        try:
            specs.append(from_module(mod))
        except ValueError as exc:
            notes.append(str(exc))
    keys = [s.key for s in specs]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ValueError(f"two section modules share the KEY {', '.join(dup)}")
    return sorted(specs, key=lambda s: (s.order, s.key)), notes


def select(specs: Sequence[SectionSpec], keys: Sequence[str] | None) -> list[SectionSpec]:
    """The sections named by ``keys`` (all when None), in report order."""
    if not keys:
        return list(specs)
    known = {s.key for s in specs}
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise ValueError(f"unknown section(s) {', '.join(unknown)}; available: "
                         f"{', '.join(s.key for s in specs)}")
    return [s for s in specs if s.key in set(keys)]
