"""A synthetic ETTh1-shaped multivariate series (no data download).

ETTh1 (Electricity Transformer Temperature, hourly) has seven columns: six load features
(high/middle/low useful and useless load) and the oil temperature ``OT``.  This generator keeps
its shape and character -- hourly steps, a daily (24-step) cycle, a weaker weekly (168-step)
cycle, a slow trend, AR(1) noise, loads that co-move -- with made-up levels and amplitudes.
It feeds :class:`servelab.servers.zoo.lstm.LstmForecaster` requests and small sample files.
"""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

COLUMNS = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT")
# Per-column level, daily amplitude, daily phase (hours), weekly amplitude, trend per 1000 h,
# noise scale.  Loosely in ETTh1's ranges.
_LEVEL = np.array([7.0, 2.0, 4.5, 1.2, 3.0, 1.0, 15.0])
_DAILY = np.array([2.0, 0.6, 1.6, 0.4, 0.9, 0.3, 3.0])
_PHASE = np.array([0.0, 1.0, 0.5, 1.5, 2.0, 2.5, 4.0])
_WEEKLY = np.array([0.8, 0.2, 0.6, 0.15, 0.4, 0.1, 1.2])
_TREND = np.array([0.3, 0.05, 0.2, 0.05, 0.1, 0.02, 1.5])
_NOISE = np.array([0.5, 0.2, 0.4, 0.15, 0.3, 0.1, 0.6])
_AR = 0.8
START = datetime(2016, 7, 1)  # ETTh1's first timestamp


def etth1_like(n_steps: int, rng: np.random.Generator, start: int | None = None) -> np.ndarray:
    """An (n_steps, 7) float32 array of hourly values, columns as :data:`COLUMNS`.

    ``start`` is the hour offset of the first step (random in the first year if None), so
    windows differ in phase as well as noise.
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    t0 = int(rng.integers(0, 24 * 365)) if start is None else start
    t = (t0 + np.arange(n_steps, dtype=np.float64))[:, None]
    daily = _DAILY * np.sin(2 * np.pi * (t + _PHASE) / 24.0)
    weekly = _WEEKLY * np.sin(2 * np.pi * t / 168.0)
    trend = _TREND * t / 1000.0
    # AR(1) noise; a shared component makes the loads co-move.
    shocks = rng.standard_normal((n_steps, len(COLUMNS))) + 0.5 * rng.standard_normal((n_steps, 1))
    noise = np.empty_like(shocks)
    noise[0] = shocks[0]
    for i in range(1, n_steps):
        noise[i] = _AR * noise[i - 1] + np.sqrt(1 - _AR**2) * shocks[i]
    return (_LEVEL + daily + weekly + trend + _NOISE * noise).astype(np.float32)


def write_sample_csv(path: str | Path, n_steps: int = 24 * 30, seed: int = 0) -> Path:
    """Write an ETTh1-style CSV (``date,HUFL,...,OT``) of ``n_steps`` hours; returns the path."""
    path = Path(path)
    values = etth1_like(n_steps, np.random.default_rng(seed), start=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("date", *COLUMNS))
        for i, row in enumerate(values):
            stamp = (START + timedelta(hours=i)).strftime("%Y-%m-%d %H:%M:%S")
            writer.writerow((stamp, *(f"{v:.3f}" for v in row)))
    return path


def read_csv(path: str | Path) -> np.ndarray:
    """Read an ETTh1-style CSV (a ``date`` column then the seven value columns) as float32."""
    with Path(path).open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        if tuple(header[1:]) != COLUMNS:
            raise ValueError(f"{path}: expected columns date,{','.join(COLUMNS)}, got {header}")
        return np.array([[float(v) for v in row[1:]] for row in reader], dtype=np.float32)
