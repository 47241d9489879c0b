"""The run folder of a validation: ``grid.json``, ``capacities.json``, ``points.parquet``.

Every write is atomic (:mod:`servelab.results`), so a killed run never leaves a
half-written table that a resumed run would trust.
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


@dataclass
class Store:
    """The run folder."""

    path: Path

    def points(self) -> pd.DataFrame:
        p = self.path / "points.parquet"
        return pd.read_parquet(p) if p.exists() else pd.DataFrame()

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
        write_json(self.path / "grid.json", {"grid": grid.to_dict(), **meta})
