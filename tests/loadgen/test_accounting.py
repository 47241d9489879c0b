"""Records and summaries from synthetic send results (no network)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from servelab.core.requests import RECORD_COLUMNS
from servelab.loadgen.accounting import build_records, merge_results, summarize
from servelab.loadgen.generator import CODE, SendResult
from servelab.loadgen.schedule import Schedule
from servelab.summary import Window

from .conftest import spec


def _schedule(n: int) -> Schedule:
    s = Schedule.from_spec(spec(rate=n / 2.0, duration=2.0))
    assert len(s) == n
    return s


def _result(s: Schedule, lag: float, latency: float, status: str = "ok", t0: float = 100.0,
            ) -> SendResult:
    n = len(s)
    send = t0 + s.times + lag
    return SendResult(
        s.request_id, send, send + latency, np.full(n, 200, dtype=np.int32),
        np.full(n, CODE[status], dtype=np.int8), {}, t0, np.zeros(n, dtype=np.int64),
    )


def test_records_follow_the_shared_schema_and_latency_counts_from_the_intended_time() -> None:
    s = _schedule(100)
    r = _result(s, lag=0.002, latency=0.010)
    r.status[5], r.end[5], r.send[5] = CODE["not_sent"], math.nan, math.nan
    r.status[6], r.http_status[6] = CODE["error"], 0
    r.errors[6] = "connection refused"
    df = build_records(s, r, warmup_s=0.5, config_id="cfg-1")
    assert tuple(df.columns[: len(RECORD_COLUMNS)]) == RECORD_COLUMNS
    assert df["request_id"].tolist() == list(range(100))
    assert df["latency"].iloc[0] == pytest.approx(0.012)
    assert df["send_lag"].iloc[0] == pytest.approx(0.002)
    assert df["enqueue"].iloc[0] == pytest.approx(df["intended_arrival"].iloc[0] + 0.002)
    assert df.loc[5, "status"] == "not_sent" and math.isnan(df.loc[5, "latency"])
    assert df.loc[6, "error"] == "connection refused" and df.loc[6, "status"] == "error"
    assert set(df["config_id"]) == {"cfg-1"}
    assert df["warmup"].sum() == (s.times < 0.5).sum()


def test_a_run_that_sent_nothing_has_every_column_and_a_summary() -> None:
    import dataclasses

    four = _schedule(4)
    s = dataclasses.replace(four, **{f.name: getattr(four, f.name)[:0]
                                     for f in dataclasses.fields(four)
                                     if isinstance(getattr(four, f.name), np.ndarray)})
    assert len(s) == 0
    df = build_records(s, _result(s, 0.0, 0.01))
    full = build_records(_schedule(4), _result(_schedule(4), 0.0, 0.01))
    assert len(df) == 0 and list(df.columns) == list(full.columns)
    summary = summarize(df, Window(0.0, 0.1), target_rate=0.01)
    assert summary["requests"] == 0 and summary["latency_s"]["n"] == 0
    assert summary["generator"]["scheduled"] == 0 and math.isnan(summary["latency_s"]["p99"])


def test_a_request_that_never_ended_is_refused() -> None:
    s = _schedule(10)
    r = _result(s, 0.0, 0.01)
    r.status[3] = 0
    with pytest.raises(ValueError, match="never ended"):
        build_records(s, r)


def test_summary_excludes_warmup_and_flags_lag() -> None:
    s = _schedule(200)
    r = _result(s, lag=0.0001, latency=0.005)
    warm = s.times < 0.5
    r.end[warm] += 5.0  # a terrible warm-up, excluded from the figures
    df = build_records(s, r, warmup_s=0.5)
    out = summarize(df, Window(0.5, 2.0), target_rate=100.0)
    gen = out["generator"]
    assert out["latency_s"]["n"] == out["requests"] == int((~warm).sum())
    assert out["latency_s"]["p99"] == pytest.approx(0.0051)  # seconds in data
    assert out["per_model"]["mobilenet_v2"]["p50"] == pytest.approx(0.0051)
    assert gen["lag_s"]["p99"] == pytest.approx(0.0001)
    assert gen["lag_p99_ok"] and gen["flags"] == []
    assert gen["counts"]["ok"] == 200 and gen["warmup_excluded"] == int(warm.sum())
    assert out["status"]["ok"] == int((~warm).sum())
    assert gen["achieved_rate"] == pytest.approx(100.0)

    late = build_records(s, _result(s, lag=0.003, latency=0.005), warmup_s=0.5)
    flagged = summarize(late, Window(0.5, 2.0), target_rate=100.0)["generator"]
    assert not flagged["lag_p99_ok"]
    assert any("lag p99" in f for f in flagged["flags"])


def test_merging_per_process_results_restores_request_order() -> None:
    s = _schedule(30)
    full = _result(s, 0.0, 0.01)
    full.errors[4] = "boom"
    parts = []
    for k in range(3):
        rows = np.arange(k, 30, 3)
        parts.append(SendResult(
            s.request_id[rows], full.send[rows], full.end[rows], full.http_status[rows],
            full.status[rows], {j: full.errors[r] for j, r in enumerate(rows) if r in full.errors},
            full.t0, np.full(rows.size, k, dtype=np.int64),
        ))
    merged = merge_results(parts)
    assert np.array_equal(merged.request_id, s.request_id)
    assert np.array_equal(merged.send, full.send)
    assert merged.errors == {4: "boom"}
    assert merged.process is not None and merged.process.tolist() == [i % 3 for i in range(30)]
