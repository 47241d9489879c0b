"""A built section on disk, so that a resumed report reuses it: ``<dir>/section.json`` (every
field but the data), ``<dir>/<name>.png`` and ``<dir>/<name>.parquet`` per figure and
``<dir>/<name>.parquet`` per table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from servelab.analysis.report.section import Figure, Section, Table
from servelab.results import write_json, write_parquet

FORMAT = "servelab-report-section"
VERSION = 1


def parquet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every column Parquet can store: object columns that pyarrow rejects (mixed
    types, dicts of varying keys) become strings."""
    import pyarrow as pa

    out = df.copy()
    out.columns = [str(c) for c in out.columns]
    for col in out.columns:
        if out[col].dtype != object:
            continue
        try:
            pa.array(out[col])
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            out[col] = out[col].map(lambda v: v if v is None else str(v))
    return out.reset_index(drop=True)


def write_frame(path: Path, df: pd.DataFrame) -> None:
    write_parquet(path, parquet_safe(df))


def save(section: Section, folder: Path, order: int, seconds: float,
         extra: dict[str, Any] | None = None) -> Section:
    """Write ``section`` under ``folder``; returns it with its PNGs pointing there."""
    folder.mkdir(parents=True, exist_ok=True)
    figures = []
    for fig in section.figures:
        png = folder / f"{fig.name}.png"
        if Path(fig.png).resolve() != png.resolve():
            shutil.copyfile(fig.png, png)
        write_frame(folder / f"{fig.name}.parquet", fig.data)
        figures.append(Figure(fig.name, png, fig.data, fig.claim, fig.command, fig.fidelity,
                              fig.spread))
    for tab in section.tables:
        write_frame(folder / f"{tab.name}.parquet", tab.data)
    stored = Section(section.key, section.title, section.answer, figures, list(section.tables),
                     list(section.notes))
    write_json(folder / "section.json", {
        "format": FORMAT, "version": VERSION, "key": section.key, "title": section.title,
        "order": order, "answer": section.answer, "notes": list(section.notes),
        "seconds": seconds, **(extra or {}),
        "figures": [{"name": f.name, "claim": f.claim, "command": f.command,
                     "fidelity": f.fidelity, "spread": f.spread} for f in section.figures],
        "tables": [{"name": t.name, "caption": t.caption, "command": t.command}
                   for t in section.tables],
    })
    return stored


def load(folder: Path) -> tuple[Section, dict[str, Any]]:
    """The section stored under ``folder`` and its stored metadata (order, seconds, ...);
    raises FileNotFoundError / ValueError when it is not a complete stored section."""
    meta = json.loads((folder / "section.json").read_text())
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(f"{folder}: not a stored report section (format {meta.get('format')}, "
                         f"version {meta.get('version')})")
    figures = []
    for f in meta["figures"]:
        png = folder / f"{f['name']}.png"
        if not png.is_file():
            raise FileNotFoundError(f"{png}: figure missing")
        figures.append(Figure(f["name"], png, pd.read_parquet(folder / f"{f['name']}.parquet"),
                              f["claim"], f["command"], f.get("fidelity"), f.get("spread")))
    tables = [Table(t["name"], pd.read_parquet(folder / f"{t['name']}.parquet"), t["caption"],
                    t["command"]) for t in meta["tables"]]
    section = Section(meta["key"], meta["title"], meta["answer"], figures, tables,
                      list(meta.get("notes", [])))
    return section, meta
