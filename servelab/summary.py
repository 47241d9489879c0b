"""The one run summary: what a run's per-request records say, simulated or live.

:func:`summarize` reads records in the shared schema (:mod:`servelab.core.requests`) over a
measured :class:`Window` and returns a frozen :class:`Summary`.  The simulator, the load
generator, validate, crosscheck and the report all summarise through it, so a simulated and a
live figure are the same computation over the same columns.

Units: **seconds in data** (every latency, wait and window is in seconds; rates are per
second); milliseconds appear only in printed tables.

What counts (one rule for every run): latencies, waits, statuses and goodput are over the
requests that *arrived* in the window (intended arrival at or after its start); ``throughput``
counts the requests that *completed* ok in it, so an overloaded server's backlog, drained after
the window, does not count as capacity; ``ok_throughput`` is every ok request over the time of
the last completion (the load generator's historical figure).  Percentiles are numpy's linear
interpolation over every sample (no histogram binning).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from servelab.core.plain import from_plain, to_plain
from servelab.core.requests import STATUSES

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)


@dataclass(frozen=True)
class Window:
    """The measured part of a run, in seconds from its start (usually warm-up to duration)."""

    start: float
    stop: float

    @classmethod
    def of(cls, workload: Any) -> Window:
        """A workload's (:class:`~servelab.core.workload.WorkloadSpec`) measured window: from
        the end of its warm-up to its end."""
        return cls(float(workload.warmup_s), float(workload.total_duration))

    @property
    def length(self) -> float:
        return max(self.stop - self.start, 1e-12)


@dataclass(frozen=True)
class Distribution:
    """Count, mean, standard percentiles and max of a sample (seconds); NaN when empty."""

    n: int
    mean: float = math.nan
    p50: float = math.nan
    p90: float = math.nan
    p95: float = math.nan
    p99: float = math.nan
    p999: float = math.nan
    max: float = math.nan

    @classmethod
    def of(cls, values: Any) -> Distribution:
        v = np.asarray(values, dtype=float)
        v = v[~np.isnan(v)]
        if v.size == 0:
            return cls(0)
        p50, p90, p95, p99, p999 = (float(q) for q in np.percentile(v, PERCENTILES))
        return cls(int(v.size), float(v.mean()), p50, p90, p95, p99, p999, float(v.max()))

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Distribution:
        return from_plain(cls, data, "distribution")


@dataclass(frozen=True)
class Slo:
    """Goodput under a latency objective: ok within ``slo_ms`` (one number or per model)."""

    slo_ms: Any
    goodput: float
    attainment: float


@dataclass(frozen=True)
class ModelSummary:
    throughput: float
    latency: Distribution


@dataclass(frozen=True)
class Summary:
    """One run's figures over its measured window (see the module docstring for what counts)."""

    window: Window
    requests: int
    status: Mapping[str, int]
    offered_rate: float
    throughput: float
    ok_throughput: float
    latency: Distribution
    wait: Distribution
    per_model: Mapping[str, ModelSummary] = field(default_factory=dict)
    mean_batch: float = math.nan
    slo: Slo | None = None

    @property
    def reward(self) -> float:
        return reward(self.throughput, self.latency.p99)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form every summary file and sweep row uses (flat per-model figures)."""
        out: dict[str, Any] = {
            "window_s": [self.window.start, self.window.stop],
            "requests": self.requests,
            "status": dict(self.status),
            "offered_rate": self.offered_rate,
            "throughput": self.throughput,
            "ok_throughput": self.ok_throughput,
            "latency_s": self.latency.to_dict(),
            "wait_s": self.wait.to_dict(),
            "per_model": {m: {"throughput": s.throughput, **s.latency.to_dict()}
                          for m, s in self.per_model.items()},
            "mean_batch": self.mean_batch,
            "reward": self.reward,
        }
        if self.slo is not None:
            out.update(slo_ms=self.slo.slo_ms, goodput=self.slo.goodput,
                       slo_attainment=self.slo.attainment)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Summary:
        """A summary back from :meth:`to_dict`'s form (extra keys, e.g. metadata, ignored)."""
        start, stop = data["window_s"]
        per_model = {
            m: ModelSummary(float(s["throughput"]), Distribution.from_dict(
                {k: v for k, v in s.items() if k != "throughput"}))
            for m, s in data.get("per_model", {}).items()
        }
        slo = (Slo(data["slo_ms"], float(data["goodput"]), float(data["slo_attainment"]))
               if "goodput" in data else None)
        return cls(
            Window(float(start), float(stop)), int(data["requests"]),
            {k: int(v) for k, v in data["status"].items()}, float(data["offered_rate"]),
            float(data["throughput"]), float(data["ok_throughput"]),
            Distribution.from_dict(data["latency_s"]), Distribution.from_dict(data["wait_s"]),
            per_model, float(data.get("mean_batch", math.nan)), slo,
        )


def slo_seconds(slo_ms: float | Mapping[str, float], models: np.ndarray) -> np.ndarray:
    """Per-request SLO in seconds (``slo_ms`` is one number, or per model with ``*`` default)."""
    if isinstance(slo_ms, Mapping):
        wild = slo_ms.get("*", math.inf)
        return np.array([slo_ms.get(m, wild) for m in models], dtype=float) / 1e3
    return np.full(len(models), float(slo_ms) / 1e3)


def reward(throughput: float, p99_s: float) -> float:
    """The study's original reward: throughput / (1 + p99 latency in seconds)."""
    return 0.0 if not math.isfinite(p99_s) else throughput / (1.0 + p99_s)


def summarize(
    records: pd.DataFrame, window: Window,
    slo_ms: float | Mapping[str, float] | None = None,
) -> Summary:
    """The :class:`Summary` of ``records`` over ``window``."""
    all_ok = records["status"].to_numpy() == "ok"
    all_end = records["end"].to_numpy(dtype=float)
    in_window = all_ok & (all_end >= window.start) & (all_end <= window.stop)
    all_models = records["model"].to_numpy()
    rec = records[records["intended_arrival"].to_numpy() >= window.start]
    status = rec["status"].to_numpy()
    ok = status == "ok"
    lat = (rec["end"] - rec["intended_arrival"]).to_numpy(dtype=float)
    wait = (rec["start"] - rec["enqueue"]).to_numpy(dtype=float)
    models = rec["model"].to_numpy()
    last_end = float(all_end[all_ok].max()) if all_ok.any() else 0.0
    batches = rec["batch_size"].to_numpy()[ok]
    batches = batches[batches > 0]  # a client never knows the batch (0)
    slo = None
    if slo_ms is not None:
        good = ok & (lat <= slo_seconds(slo_ms, models))
        slo = Slo(dict(slo_ms) if isinstance(slo_ms, Mapping) else float(slo_ms),
                  int(good.sum()) / window.length,
                  float(good.sum() / len(rec)) if len(rec) else math.nan)
    return Summary(
        window=window,
        requests=int(len(rec)),
        status={s: int((status == s).sum()) for s in STATUSES},
        offered_rate=len(rec) / window.length,
        throughput=int(in_window.sum()) / window.length,
        ok_throughput=int(all_ok.sum()) / last_end if last_end > 0 else 0.0,
        latency=Distribution.of(lat[ok]),
        wait=Distribution.of(wait[ok]),
        per_model={
            str(m): ModelSummary(int((in_window & (all_models == m)).sum()) / window.length,
                                 Distribution.of(lat[ok & (models == m)]))
            for m in sorted(set(models.tolist()))
        },
        mean_batch=float(batches.mean()) if batches.size else math.nan,
        slo=slo,
    )
