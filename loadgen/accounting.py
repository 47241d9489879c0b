"""Latency accounting: per-request records in the shared schema, and the run's summary.

Record columns (the shared schema of :mod:`servelab.core.requests`, as seen from the client):
``intended_arrival`` is the intended send time, ``enqueue`` the actual send time, ``end`` the
completion (or failure / client-timeout) time, all in seconds from the run's start; ``start``
is unknown to a client (NaN), ``worker`` -1, ``batch_size`` 0, ``queue_len_at_arrival`` -1.
Extra columns: ``latency`` (end − intended), ``send_lag`` (actual − intended send),
``http_status`` (0 = no response), ``error``, ``phase``, ``deadline``, ``process`` (which
sender process) and ``warmup`` (intended before the spec's ``warmup_s``).

The summary is :func:`servelab.summary.summarize` over the run after its warm-up — the same
figures, computed the same way, as a simulated run's — plus a ``generator`` block about the
client itself.  Seconds in data; milliseconds only in printed tables.
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
from servelab.summary import Distribution, Window
from servelab.summary import summarize as run_summary

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


def summarize(df: pd.DataFrame, window: Window, target_rate: float) -> dict[str, Any]:
    """The run's :class:`~servelab.summary.Summary` over ``window`` (warm-up to duration; the
    same computation as a simulated run's) plus the ``generator`` block: what the client itself
    did (every scheduled request, incl. warm-up), its send lag in seconds, and flags."""
    n, duration = len(df), window.stop
    sent = df["enqueue"].notna() & df["status"].ne("not_sent")
    last_send = float(df.loc[sent, "enqueue"].max()) if sent.any() else 0.0
    span = max(duration, last_send)
    post = df[df["intended_arrival"] >= window.start]
    post_sent = post["enqueue"].notna() & post["status"].ne("not_sent")
    counts = {s: int((df["status"] == s).sum()) for s in STATUSES}
    lag = Distribution.of(post.loc[post_sent, "send_lag"].to_numpy())
    flags = []
    if lag.n and lag.p99 > LAG_LIMIT_S:
        flags.append(f"generator lag p99 {lag.p99 * 1e3:.3f} ms > {LAG_LIMIT_S * 1e3:g} ms")
    if counts["not_sent"]:
        flags.append(f"{counts['not_sent']} requests not sent (generator fell behind or aborted)")
    if n and int(sent.sum()) / n < 0.98:
        flags.append(f"only {int(sent.sum())} of {n} scheduled requests were sent")
    generator = {
        "scheduled": n,
        "counts": counts,
        "warmup_excluded": n - len(post),
        "duration_s": duration,
        "send_span_s": span,
        "target_rate": target_rate,
        "scheduled_rate": n / duration if duration > 0 else math.nan,
        "achieved_rate": int(sent.sum()) / span if span > 0 else math.nan,
        "lag_s": lag.to_dict(),
        "lag_s_including_warmup": Distribution.of(df.loc[sent, "send_lag"].to_numpy()).to_dict(),
        "lag_p99_ok": not lag.n or lag.p99 <= LAG_LIMIT_S,
        "flags": flags,
    }
    return {**run_summary(df, window).to_dict(), "generator": generator}
