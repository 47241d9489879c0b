"""The interface every report section implements, and the context it is built in.

A section module ``sec_<key>.py`` in this package defines ``KEY`` (short name, used in file names
and ``--sections``), ``TITLE`` (the question it answers), ``ORDER`` (its section number) and
``build(ctx: Context) -> Section``; ``sections.py`` lists the modules the report runs.
``build`` runs (or reuses, through ``ctx.cached``) the measurements it needs, writes each figure's
PNG under ``ctx.out`` and returns what the renderer lays out.  A section that cannot be built on
this machine (no compiled kernel, no perf counters) still returns a Section whose ``notes`` say
what is missing and how to get it; it never raises for that.

Every Figure carries the one claim it supports, the command that reproduces it, and, where it has
a simulated and a live version, how far they agree (``fidelity``); every figure's data is a
DataFrame the renderer writes as Parquet beside the PNG.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass
class Figure:
    name: str                    # file stem, unique within the report: "<key>-<what>"
    png: Path                    # the figure, already written by the section
    data: pd.DataFrame           # the data behind it (written as <name>.parquet)
    claim: str                   # the one claim this figure supports, with its numbers
    command: str                 # the servelab command line that reproduces it
    fidelity: str | None = None  # e.g. "sim vs live p99: median |error| 18% over 12 points"
    spread: str | None = None    # e.g. "error bars: min-max over 3 repeats"


@dataclass
class Table:
    name: str
    data: pd.DataFrame
    caption: str
    command: str


@dataclass
class Section:
    key: str
    title: str                   # the question
    answer: str                  # the answer in one sentence, with the numbers behind it
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # caveats: machine limits, what was skipped


@dataclass
class Context:
    out: Path                    # the report folder (results/report-<time>/)
    quick: bool                  # the <= 20-minute cut: fewer points, shorter runs
    profile: Path | None         # calibrated profile for the simulated halves
    machine: dict[str, Any]      # servelab.machine.machine_metadata()
    cache: Path                  # results/report-cache/: inputs reused across reports
    variant: str = "full"        # model variant ("tiny" for tests)
    log: Callable[[str], None] = print

    def figure_path(self, name: str) -> Path:
        """Where a section writes figure ``name``'s PNG: ``<out>/figures/<name>.png`` (the
        folder is created).  Any path works; this one saves the renderer a copy."""
        path = self.out / "figures" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def cached(self, name: str, compute: Callable[[], pd.DataFrame],
               meta: dict[str, Any] | None = None) -> pd.DataFrame:
        """``compute()`` once per (name, quick, variant, meta); later reports, and a resumed
        one, read the stored Parquet.  ``meta`` holds whatever must match for the cache to be
        valid (the profile's name, the sizes of a grid)."""
        key = {"name": name, "quick": self.quick, "variant": self.variant, **(meta or {})}
        key = json.loads(json.dumps(key, default=str))  # as stored: tuples become lists
        stem = name + ("-quick" if self.quick else "") + ("" if self.variant == "full"
                                                          else f"-{self.variant}")
        data, info = self.cache / f"{stem}.parquet", self.cache / f"{stem}.json"
        if data.is_file() and info.is_file() and json.loads(info.read_text()) == key:
            self.log(f"  {name}: reusing {data}")
            return pd.read_parquet(data)
        from servelab.results import write_json, write_parquet

        df = compute()
        write_parquet(data, df)
        write_json(info, key)
        return df
