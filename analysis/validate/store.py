"""The run folder of a validation: ``grid.json``, ``capacities.json``, ``points.parquet``.

Every write is atomic (:mod:`servelab.results`), so a killed run never leaves a
half-written table that a resumed run would trust.

Format :data:`VERSION` 2 has the points' latencies in seconds (``live_p50_s``, ``sim_p99_s``,
``err_p50_s``, ...).  Version 1 (before the unit convention of issue 15; its ``grid.json``
has no ``version``) had them in milliseconds (``live_p50_ms`` ...): :meth:`Store.points`
reads such a table converted, so an old run resumes and re-simulates as a new one, and the
next save writes it in version 2.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from servelab.analysis.validate.grid import Grid
from servelab.results import write_json, write_parquet

VERSION = 2
"""The run folder's format (see the module docstring); ``grid.json`` and ``summary.json``
say it."""
_MS_COLUMNS = {f"{side}_{m}_ms": f"{side}_{m}_s"
               for side in ("live", "sim") for m in ("p50", "p99")}
_ERROR_COLUMNS = {"err_p50_ms": "err_p50_s", "err_p99_ms": "err_p99_s"}


def upgrade_points(df: pd.DataFrame) -> pd.DataFrame:
    """A points table in the current format: a version-1 table's millisecond latencies in
    seconds (its relative errors renamed, unchanged); a current one as it is."""
    old = [c for c in (*_MS_COLUMNS, *_ERROR_COLUMNS) if c in df.columns]
    if not old:
        return df
    clash = [c for c in old if {**_MS_COLUMNS, **_ERROR_COLUMNS}[c] in df.columns]
    if clash:
        raise ValueError(f"points table has both the old (ms) and the new (s) columns: {clash}")
    out = df.rename(columns={**_MS_COLUMNS, **_ERROR_COLUMNS})
    for c in _MS_COLUMNS.values():
        if c in out.columns:
            out[c] = out[c].astype(float) / 1e3
    return out


@dataclass
class Store:
    """The run folder."""

    path: Path

    def points(self) -> pd.DataFrame:
        p = self.path / "points.parquet"
        return upgrade_points(pd.read_parquet(p)) if p.exists() else pd.DataFrame()

    def save_points(self, df: pd.DataFrame) -> None:
        write_parquet(self.path / "points.parquet", df)

    def capacities(self) -> dict[str, dict[str, Any]]:
        p = self.path / "capacities.json"
        return json.loads(p.read_text()) if p.exists() else {}

    def save_capacities(self, caps: Mapping[str, Any]) -> None:
        write_json(self.path / "capacities.json", caps)

    def grid(self) -> Grid | None:
        p = self.path / "grid.json"
        return Grid.from_dict(json.loads(p.read_text())["grid"]) if p.exists() else None

    def save_grid(self, grid: Grid, **meta: Any) -> None:
        write_json(self.path / "grid.json", {"grid": grid.to_dict(), **meta,
                                             "version": VERSION})
