"""Latency accounting: per-request records in the shared schema, and the run's summary.

Record columns (the shared schema of :mod:`servelab.core.requests`, as seen from the client):
``intended_arrival`` is the intended send time, ``enqueue`` the actual send time, ``end`` the
completion (or failure / client-timeout) time, all in seconds from the run's start; ``start``
is unknown to a client (NaN), ``worker`` -1, ``batch_size`` 0, ``queue_len_at_arrival`` -1.
Extra columns: ``latency`` (end − intended), ``send_lag`` (actual − intended send),
``http_status`` (0 = no response), ``error``, ``phase``, ``deadline``, ``process`` (which
sender process) and ``warmup`` (intended before the spec's ``warmup_s``).

The summary takes percentiles over all post-warm-up samples (numpy's linear interpolation, no
histogram binning); latency percentiles are over ``ok`` requests, status counts over all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from servelab.core.requests import STATUSES
from servelab.loadgen.generator import SendResult
from servelab.loadgen.schedule import Schedule
from servelab.results import records_frame

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
LAG_LIMIT_S = 1e-3
"""A run whose post-warm-up generator lag p99 exceeds this is flagged in its summary."""


def merge_results(results: Sequence[SendResult]) -> SendResult:
    """One result from the per-process results of one run (rows sorted by request id)."""
    if len(results) == 1:
        return results[0]
    rid = np.concatenate([r.request_id for r in results])
    order = np.argsort(rid, kind="stable")
    offsets = np.cumsum([0] + [len(r.request_id) for r in results[:-1]])
    errors: dict[int, str] = {}
    for off, r in zip(offsets, results, strict=True):
        errors.update({int(off) + k: v for k, v in r.errors.items()})
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.size)
    merged = SendResult(
        request_id=rid[order],
        send=np.concatenate([r.send for r in results])[order],
        end=np.concatenate([r.end for r in results])[order],
        http_status=np.concatenate([r.http_status for r in results])[order],
        status=np.concatenate([r.status for r in results])[order],
        errors={int(inverse[k]): v for k, v in errors.items()},
        t0=results[0].t0,
        process=np.concatenate([_process(r) for r in results])[order],
    )
    return merged


def _process(r: SendResult) -> np.ndarray:
    return r.process if r.process is not None else np.zeros(len(r.request_id), dtype=np.int64)


def build_records(
    schedule: Schedule, result: SendResult, warmup_s: float = 0.0, config_id: str = ""
) -> pd.DataFrame:
    """The per-request records of a run (one row per scheduled request, by request id)."""
    if not np.array_equal(schedule.request_id, result.request_id):
        raise ValueError("result rows do not match the schedule's request ids")
    if np.any(result.status == 0):
        raise ValueError(f"{int(np.sum(result.status == 0))} requests never ended")
    t0 = result.t0
    send = result.send - t0
    end = result.end - t0
    names = np.asarray(STATUSES, dtype=object)[result.status.astype(np.int64) - 1]
    error = np.full(len(schedule), None, dtype=object)
    for k, v in result.errors.items():
        error[k] = v
    cols: dict[str, Any] = {
        "request_id": schedule.request_id,
        "model": schedule.model_names(),
        "input_size": schedule.input_size,
        "priority": schedule.priority,
        "intended_arrival": schedule.times,
        "enqueue": send,
        "start": np.full(len(schedule), math.nan),
        "end": end,
        "status": names,
        "worker": np.full(len(schedule), -1, dtype=np.int64),
        "batch_size": np.zeros(len(schedule), dtype=np.int64),
        "queue_len_at_arrival": np.full(len(schedule), -1, dtype=np.int64),
        "config_id": np.full(len(schedule), config_id, dtype=object),
        "latency": end - schedule.times,
        "send_lag": send - schedule.times,
        "http_status": result.http_status.astype(np.int64),
        "error": error,
        "phase": schedule.phase.astype(np.int64),
        "deadline": schedule.deadline,
        "process": _process(result),
        "warmup": schedule.times < warmup_s,
    }
    # Built from columns, not rows: a run that sent nothing still has every column.
    df = records_frame(pd.DataFrame({k: np.asarray(v) for k, v in cols.items()}))
    df["error"] = df["error"].astype("string")
    return df


def percentiles_ms(values: np.ndarray) -> dict[str, Any]:
    """count, mean, max and the standard percentiles of ``values`` (seconds) in milliseconds."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    out: dict[str, Any] = {"count": int(v.size)}
    if v.size == 0:
        return out
    out["mean"] = float(v.mean() * 1e3)
    for p, q in zip(PERCENTILES, np.percentile(v, PERCENTILES) * 1e3, strict=True):
        out[f"p{p:g}"] = float(q)
    out["max"] = float(v.max() * 1e3)
    return out


def summarize(df: pd.DataFrame, duration: float, target_rate: float) -> dict[str, Any]:
    """The summary of one run's records (see the module docstring for what counts)."""
    n = len(df)
    sent = df["enqueue"].notna() & df["status"].ne("not_sent")
    last_send = float(df.loc[sent, "enqueue"].max()) if sent.any() else 0.0
    span = max(duration, last_send)
    post = df[~df["warmup"]]
    post_sent = post["enqueue"].notna() & post["status"].ne("not_sent")
    ok = post[post["status"] == "ok"]
    counts = {s: int((df["status"] == s).sum()) for s in STATUSES}
    post_counts = {s: int((post["status"] == s).sum()) for s in STATUSES}
    lag = percentiles_ms(post.loc[post_sent, "send_lag"].to_numpy())
    lag_all = percentiles_ms(df.loc[sent, "send_lag"].to_numpy())
    ends = df.loc[df["status"] == "ok", "end"]
    flags = []
    if lag.get("p99", 0.0) > LAG_LIMIT_S * 1e3:
        flags.append(f"generator lag p99 {lag['p99']:.3f} ms > {LAG_LIMIT_S * 1e3:g} ms")
    if counts["not_sent"]:
        flags.append(f"{counts['not_sent']} requests not sent (generator fell behind or aborted)")
    if n and int(sent.sum()) / n < 0.98:
        flags.append(f"only {int(sent.sum())} of {n} scheduled requests were sent")
    return {
        "requests": n,
        "duration_s": duration,
        "send_span_s": span,
        "target_rate": target_rate,
        "scheduled_rate": n / duration if duration > 0 else math.nan,
        "achieved_rate": int(sent.sum()) / span if span > 0 else math.nan,
        "ok_throughput": len(ends) / float(ends.max()) if len(ends) and ends.max() > 0 else 0.0,
        "counts": counts,
        "counts_after_warmup": post_counts,
        "warmup_excluded": int(df["warmup"].sum()),
        "latency_ms": {
            "overall": percentiles_ms(ok["latency"].to_numpy()),
            "per_model": {
                m: percentiles_ms(g["latency"].to_numpy())
                for m, g in ok.groupby("model", sort=True, observed=True)
            },
        },
        "lag_ms": lag,
        "lag_ms_including_warmup": lag_all,
        "lag_p99_ok": lag.get("p99", 0.0) <= LAG_LIMIT_S * 1e3,
        "flags": flags,
    }
