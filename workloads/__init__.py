"""Named workloads shipped with servelab, and loading workload files (YAML or JSON)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from servelab.core.workload import WorkloadSpec


def list_workloads() -> list[str]:
    """Names of the workloads shipped in this package."""
    return sorted(
        p.name.removesuffix(".yaml")
        for p in resources.files(__package__).iterdir()
        if p.name.endswith(".yaml")
    )


def _parse(text: str, suffix: str) -> Any:
    return json.loads(text) if suffix == ".json" else yaml.safe_load(text)


def load_workload(name_or_path: str | Path, **overrides: Any) -> WorkloadSpec:
    """Load a workload by shipped name (``mixed``) or from a ``.yaml`` / ``.json`` file.

    ``overrides`` replace top-level fields (e.g. ``seed=3``, ``duration=5``) before validation.
    A trace arrival may name ``times_file`` (one offset in seconds per line, or a Parquet/CSV
    column ``time``) relative to the workload file.
    """
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml", ".json"):
        if not path.exists():
            raise FileNotFoundError(f"workload file not found: {path}")
        data = _parse(path.read_text(), path.suffix)
        base = path.parent
    else:
        name = str(name_or_path)
        if name not in list_workloads():
            raise ValueError(f"unknown workload {name!r}; shipped: {', '.join(list_workloads())}")
        res = resources.files(__package__).joinpath(f"{name}.yaml")
        data = yaml.safe_load(res.read_text())
        base = Path(str(res)).parent
    if not isinstance(data, dict):
        raise ValueError(f"workload {name_or_path}: expected a mapping at the top level")
    data.update({k: v for k, v in overrides.items() if v is not None})
    for arrival in [data.get("arrival")] + [p.get("arrival") for p in data.get("phases") or []]:
        if isinstance(arrival, dict) and "times_file" in arrival:
            arrival["times"] = _read_times(base / arrival.pop("times_file"))
    return WorkloadSpec.from_dict(data)


def _read_times(path: Path) -> list[float]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return [float(t) for t in pq.read_table(path, columns=["time"]).column("time").to_pylist()]
    if path.suffix == ".csv":
        import pandas as pd

        return [float(t) for t in pd.read_csv(path)["time"]]
    return [float(line) for line in path.read_text().split() if line.strip()]
