"""The study's metrics of one run, from its per-request records (run-relative times): waits per
class (mean, p99, max), starvation, Jain's index over the classes' slowdowns and throughput
(definitions: the package docstring); the per-request waits; live cells' slowdowns against the
FIFO cell of the same load.  Plain arithmetic on frames."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd


def jain(x: Sequence[float]) -> float:
    """Jain's fairness index of ``x`` (1 = all equal, 1/n = one takes everything)."""
    a = np.asarray([v for v in x if np.isfinite(v)], dtype=float)
    if a.size == 0 or not (a**2).sum() > 0:
        return math.nan
    return float(a.sum() ** 2 / (a.size * (a**2).sum()))


def measured(rec: pd.DataFrame, start: float) -> pd.DataFrame:
    """The ok requests that arrived after the warm-up, with wait, sojourn and service columns."""
    ok = rec[(rec["status"] == "ok") & (rec["enqueue"] >= start)]
    return ok.assign(
        wait=ok["start"] - ok["enqueue"], sojourn=ok["end"] - ok["enqueue"],
        service=ok["end"] - ok["start"],
    )


def cell_metrics(
    rec: pd.DataFrame, start: float, stop: float, models: Sequence[str],
    service_ref: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The study's metrics of one run (records with run-relative times; see the module doc)."""
    window = max(stop - start, 1e-12)
    ok_all = rec["status"] == "ok"
    done = ok_all & (rec["end"] >= start) & (rec["end"] <= stop)
    m = measured(rec, start)
    arrived = rec[rec["enqueue"] >= start]
    out: dict[str, Any] = {
        "requests": int(len(arrived)), "ok": int(len(m)),
        "rejected": int((arrived["status"] == "rejected").sum()),
        "timeout": int((arrived["status"] == "timeout").sum()),
        "error": int((arrived["status"] == "error").sum()),
        "offered": len(arrived) / window, "throughput": int(done.sum()) / window,
        "wait_mean": float(m["wait"].mean()) if len(m) else math.nan,
        "wait_p99": float(np.percentile(m["wait"], 99)) if len(m) else math.nan,
        "wait_max": float(m["wait"].max()) if len(m) else math.nan,
        "sojourn_mean": float(m["sojourn"].mean()) if len(m) else math.nan,
    }
    slow: list[float] = []
    worst, worst_mean = "", -1.0
    for model in models:
        g = m[m["model"] == model]
        w = g["wait"].to_numpy()
        n = len(g)
        service = (service_ref or {}).get(model, math.nan)
        if not math.isfinite(service):
            service = float(g["service"].mean()) if n else math.nan
        out[f"n_{model}"] = n
        out[f"wait_mean_{model}"] = float(w.mean()) if n else math.nan
        out[f"wait_p99_{model}"] = float(np.percentile(w, 99)) if n else math.nan
        out[f"wait_max_{model}"] = float(w.max()) if n else math.nan
        out[f"sojourn_mean_{model}"] = float(g["sojourn"].mean()) if n else math.nan
        out[f"sojourn_p99_{model}"] = float(np.percentile(g["sojourn"], 99)) if n else math.nan
        out[f"service_mean_{model}"] = float(g["service"].mean()) if n else math.nan
        x = out[f"sojourn_mean_{model}"] / service if n and service > 0 else math.nan
        out[f"slowdown_{model}"] = x
        slow.append(x)
        if n and out[f"wait_mean_{model}"] > worst_mean:
            worst, worst_mean = model, out[f"wait_mean_{model}"]
    out["jain"] = jain(slow)
    out["starved_class"] = worst
    out["starved_max_wait"] = out.get(f"wait_max_{worst}", math.nan) if worst else math.nan
    return out


def service_means(rec: pd.DataFrame, start: float) -> dict[str, float]:
    m = measured(rec, start)
    return {str(k): float(v) for k, v in m.groupby("model", observed=True)["service"].mean().items()}


def wait_rows(rec: pd.DataFrame, start: float, **labels: Any) -> pd.DataFrame:
    m = measured(rec, start)
    return pd.DataFrame({
        **{k: [v] * len(m) for k, v in labels.items()},
        "model": m["model"].astype(str).to_numpy(),
        "wait": m["wait"].to_numpy(dtype=np.float32),
        "sojourn": m["sojourn"].to_numpy(dtype=np.float32),
    })


def add_live_slowdown(cells: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """Recompute slowdowns and Jain with the FIFO cell's service times as the reference."""
    if cells.empty or "fifo" not in set(cells["policy"]):
        return cells
    cells = cells.copy()
    for i, row in cells.iterrows():
        ref = cells[(cells["policy"] == "fifo") & (cells["concurrency"] == row["concurrency"])
                    & (cells["load"] == row["load"])]
        if ref.empty:
            continue
        xs = []
        for m in models:
            s = float(ref[f"service_mean_{m}"].iloc[0])
            x = row[f"sojourn_mean_{m}"] / s if s > 0 else math.nan
            cells.at[i, f"slowdown_{m}"] = x
            xs.append(x)
        cells.at[i, "jain"] = jain(xs)
    return cells
