"""Training and evaluating the learned runtime predictor; ``servelab predictor train|eval``.

Training data are per-request traces (live servers' records, calibration samples, or synthetic
traces) with the columns of :data:`servelab.core.learned.FEATURES` plus ``service_time``.  Live
records give ``service_time = end - start`` and carry ``cpu_util_at_arrival`` (whole-machine
utilisation in percent, converted to a fraction) and ``queue_len_at_arrival``; their
``config_id`` (``threads-fifo-w2-b1-...``) gives the concurrency model and workers when those
columns are absent; requests that were preempted (MLFQ) are left out, since their
``end - start`` includes time spent queued.  Missing context columns take neutral defaults.

Calibration samples (``<profile>.samples.parquet``, long form: ``bench``, ``params``, ``metric``
= ``total@<size>x<batch>``, ``value``) become trace rows with :func:`calibration_traces`;
``--traces`` recognises such files by their columns.

Collecting live traces: every server keeps its per-request trace (``GET /servelab/trace``, or
``servelab serve --trace-out trace.parquet`` on exit); ``servelab sched-study`` collects them
under load in its first phase (``<run>/traces/``) and trains on them.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor

from servelab.core.learned import (
    CATEGORICAL,
    FEATURES,
    LearnedPredictor,
    encode,
)
from servelab.core.requests import Request

DEFAULTS: dict[str, Any] = {
    "batch_size": 1, "queue_len": 0, "cpu_util": 0.0, "concurrency": "threads",
    "workers": 1, "intra_op_threads": 1, "hour": 12,
}
RENAMES = {"queue_len_at_arrival": "queue_len", "cpu_util_at_arrival": "cpu_util"}
CONFIG_ID = re.compile(r"^(?P<concurrency>threads|processes|async)-[a-z]+-w(?P<workers>\d+)-b\d+-")
"""What :attr:`ServerConfig.config_id` says about the configuration."""
SAMPLE_COLUMNS = {"bench", "params", "metric", "value"}


def prepare(df: pd.DataFrame) -> pd.DataFrame:
    """Normalise a trace table: renamed context columns, defaults, service_time, only ok rows."""
    if "cpu_util_at_arrival" in df and "cpu_util" not in df:
        # The servers sample whole-machine utilisation in percent (NaN before the first sample).
        df = df.assign(cpu_util_at_arrival=(df["cpu_util_at_arrival"] / 100.0).fillna(0.0))
    df = df.rename(columns={k: v for k, v in RENAMES.items() if k in df and v not in df})
    if "status" in df:  # rows without a status (calibration samples) count as served
        df = df[df["status"].fillna("ok") == "ok"]
    if "preemptions" in df:
        df = df[df["preemptions"].fillna(0) == 0]
    if "config_id" in df:  # fills concurrency / workers where a row lacks them
        parsed = df["config_id"].astype(str).str.extract(CONFIG_ID)
        parsed["workers"] = pd.to_numeric(parsed["workers"])
        for col in ("concurrency", "workers"):
            df = df.assign(**{col: df[col].fillna(parsed[col]) if col in df else parsed[col]})
    if "service_time" not in df or df["service_time"].isna().any():
        if not {"start", "end"} <= set(df.columns):
            raise ValueError("traces need a service_time column, or start and end")
        measured = df["end"] - df["start"]
        df = df.assign(service_time=df["service_time"].fillna(measured)
                       if "service_time" in df else measured)
    missing = [c for c in ("model", "input_size") if c not in df]
    if missing:
        raise ValueError(f"traces lack required column(s) {missing}")
    for col, default in DEFAULTS.items():
        df = df.assign(**{col: df[col].fillna(default) if col in df else default})
    df = df[df["service_time"] > 0]
    if df.empty:
        raise ValueError("no usable rows (need status ok and service_time > 0)")
    return df.reset_index(drop=True)


def design_matrix(df: pd.DataFrame, models: list[str]) -> np.ndarray:
    cols = [df[c].tolist() for c in FEATURES]
    return np.asarray([encode(models, *row) for row in zip(*cols, strict=True)], dtype=float)


def train(df: pd.DataFrame, seed: int = 0, max_iter: int = 300) -> LearnedPredictor:
    df = prepare(df)
    models = sorted(df["model"].unique().tolist())
    X = design_matrix(df, models)
    reg = HistGradientBoostingRegressor(
        max_iter=max_iter, learning_rate=0.1, random_state=seed, early_stopping=False,
        categorical_features=[FEATURES.index(c) for c in CATEGORICAL],
    )
    reg.fit(X, np.log(df["service_time"].to_numpy()))
    sizes = sorted(df["input_size"].unique().tolist())
    return LearnedPredictor(
        reg, models, metadata={"rows": len(df), "features": list(FEATURES)}, sizes=sizes
    )


def mape(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - truth) / truth) * 100)


def evaluate(predictor: LearnedPredictor, df: pd.DataFrame) -> dict[str, float]:
    """Held-out MAPE (%) per model and overall."""
    df = prepare(df)
    pred = predictor.predict_rows(design_matrix(df, predictor.models))
    truth = df["service_time"].to_numpy()
    out = {"overall": mape(pred, truth)}
    for m in sorted(df["model"].unique()):
        sel = (df["model"] == m).to_numpy()
        out[m] = mape(pred[sel], truth[sel])
    return out


def mape_floor(df: pd.DataFrame) -> dict[str, float]:
    """The MAPE (%) of the best constant per (model, input size, batch size), fitted on ``df``
    itself (the weighted median, weights 1/y, minimises MAPE): how much of the error is
    per-request jitter that model, size and batch cannot explain."""
    df = prepare(df)
    err = np.empty(len(df))
    pos = np.arange(len(df))
    for _, idx in df.groupby(["model", "input_size", "batch_size"]).indices.items():
        y = np.sort(df["service_time"].to_numpy()[idx])
        w = np.cumsum(1.0 / y)
        best = y[np.searchsorted(w, w[-1] / 2)]
        err[pos[idx]] = np.abs(best - df["service_time"].to_numpy()[idx]) / df["service_time"].to_numpy()[idx]
    out = {"overall": float(err.mean() * 100)}
    for m in sorted(df["model"].unique()):
        out[m] = float(err[(df["model"] == m).to_numpy()].mean() * 100)
    return out


def split(df: pd.DataFrame, test_fraction: float = 0.25, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    test = rng.random(len(df)) < test_fraction
    return df[~test], df[test]


def prediction_cost_us(
    predictor: LearnedPredictor, df: pd.DataFrame, n: int = 20000, warm: bool = False
) -> float:
    """Amortised live-path cost of ``predict(request)`` in microseconds, measured over ``n``
    requests drawn from the traces: with ``warm`` the tables are built first (what a server
    does at start-up, :meth:`LearnedPredictor.warm`), otherwise their building is included."""
    df = prepare(df)
    if warm:
        predictor.warm()
    idx = np.random.default_rng(0).integers(0, len(df), n)
    rows = df.iloc[idx]
    reqs = [
        Request(id=i, model=m, input_size=int(s), batch_size=int(b), queue_len_at_arrival=int(q))
        for i, (m, s, b, q) in enumerate(zip(rows["model"], rows["input_size"], rows["batch_size"],
                                             rows["queue_len"], strict=True))
    ]
    # The live server updates the context's CPU utilisation at every arrival: do the same.
    utils = rows["cpu_util"].astype(float).tolist()
    ctx = predictor.context
    t = time.perf_counter()
    for r, u in zip(reqs, utils, strict=True):
        ctx.cpu_util = u
        predictor.predict(r)
    return (time.perf_counter() - t) / n * 1e6


def synthetic_traces(n: int, seed: int = 0, noise: float = 0.03) -> pd.DataFrame:
    """Traces from a known cost function (for tests and for trying the tool without servers).

    service = base[model] + per_unit[model] * input_size, times (1 + 0.15 * batch) for batches,
    times (1 + 0.5 * cpu_util) for contention, with ``noise`` relative log-normal noise.
    """
    rng = np.random.default_rng(seed)
    base = {"mobilenet_v2": 0.009, "distilbert": 0.02, "lstm_forecaster": 0.0015}
    per_unit = {"mobilenet_v2": 0.0, "distilbert": 0.0014, "lstm_forecaster": 0.000012}
    models = rng.choice(list(base), n)
    size = np.where(
        models == "distilbert", rng.integers(8, 513, n),
        np.where(models == "lstm_forecaster", rng.choice([96, 192, 336, 720], n), 32),
    )
    batch = rng.integers(1, 5, n)
    cpu = rng.random(n)
    st = (np.vectorize(base.get)(models) + np.vectorize(per_unit.get)(models) * size) * (
        1 + 0.15 * (batch - 1)) * (1 + 0.5 * cpu) * np.exp(noise * rng.standard_normal(n))
    return pd.DataFrame({
        "model": models, "input_size": size, "batch_size": batch, "cpu_util": cpu,
        "queue_len": rng.integers(0, 50, n), "concurrency": "threads", "workers": 2,
        "intra_op_threads": 1, "hour": rng.integers(0, 24, n), "service_time": st,
    })


def read_traces(paths: list[str]) -> pd.DataFrame:
    frames = []
    for p in paths:
        path = Path(p)
        files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
        if not files:
            raise FileNotFoundError(f"no Parquet traces under {path}")
        for f in files:
            df = pd.read_parquet(f)
            frames.append(calibration_traces(df) if SAMPLE_COLUMNS <= set(df.columns) else df)
    return pd.concat(frames, ignore_index=True)


def calibration_traces(samples: pd.DataFrame, variant: str | None = None) -> pd.DataFrame:
    """Trace rows from a calibration's raw samples: every ``total@<size>x<batch>`` sample of
    the ``service`` benchmark (one worker process alone on the machine, queue empty).
    ``variant`` keeps only that model variant (``full`` / ``tiny``)."""
    s = samples[(samples["bench"] == "service") & samples["metric"].str.startswith("total@")]
    if s.empty:
        return pd.DataFrame(columns=["model", "input_size", "batch_size", "service_time"])
    params = [json.loads(p) for p in s["params"]]
    size_batch = s["metric"].str.extract(r"^total@(\d+)x(\d+)$").astype(int)
    out = pd.DataFrame({
        "model": [p.get("model", "") for p in params],
        "input_size": size_batch[0].to_numpy(),
        "batch_size": size_batch[1].to_numpy(),
        "intra_op_threads": [int(p.get("threads", 1)) for p in params],
        "variant": [p.get("variant", "") for p in params],
        "service_time": s["value"].to_numpy(dtype=float),
        "queue_len": 0, "workers": 1, "concurrency": "processes",
    })
    if variant is not None:
        out = out[out["variant"] == variant]
    return out.drop(columns="variant").reset_index(drop=True)
