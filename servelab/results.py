"""Results on disk: ``results/<run-id>/`` with Parquet tables and a JSON summary.

Every write is atomic (write to a temporary file in the same folder, then rename), so a killed
run never leaves a half-written table that a resumed run would trust.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from servelab.core.requests import RECORD_COLUMNS, RECORD_FIELDS

RESULTS_ROOT = Path(os.environ.get("SERVELAB_RESULTS", "results"))


def new_run_dir(kind: str, root: Path | None = None) -> Path:
    """A fresh ``results/<kind>-<timestamp>/`` folder."""
    root = root if root is not None else RESULTS_ROOT
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = root / f"{kind}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"{kind}-{stamp}-{n}"
    path.mkdir(parents=True)
    return path


def atomic_write(path: Path, write: Any) -> None:
    """``write(tmp)`` a temporary file in ``path``'s folder, then rename it to ``path``: a
    reader never sees half a file (a killed writer leaves none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_figure(fig: Any, path: Path, dpi: int = 110) -> Path:
    """A matplotlib figure as an image at ``path`` (format from its suffix), atomically."""
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".")))
    return path


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    def w(tmp: str) -> None:
        Path(tmp).write_text(json.dumps(data, indent=2, default=_json_default) + "\n")

    atomic_write(Path(path), w)


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def write_parquet(path: Path, df: pd.DataFrame) -> None:
    atomic_write(Path(path), lambda tmp: df.to_parquet(tmp, index=False))


def records_frame(records: Iterable[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Per-request records (rows, or a frame of columns) as a DataFrame with the shared
    schema's columns and dtypes first (extra columns, e.g. ``send_lag`` or
    ``cpu_util_at_arrival``, are kept after them, also when there are no rows)."""
    df = records.copy() if isinstance(records, pd.DataFrame) else pd.DataFrame(list(records))
    for name, dtype in RECORD_FIELDS:
        if name not in df:
            df[name] = pd.Series(dtype=dtype)
        df[name] = df[name].astype(dtype)
    extra = [c for c in df.columns if c not in RECORD_COLUMNS]
    return df[list(RECORD_COLUMNS) + extra]
