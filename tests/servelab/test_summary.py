"""The one run summary, checked by hand on small record frames."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from servelab.results import records_frame
from servelab.summary import Distribution, Summary, Window, reward, summarize


def _records(rows: list[tuple[str, float, float, str, int]]) -> pd.DataFrame:
    """(model, intended arrival, end, status, batch size) rows; start/enqueue 1 ms apart."""
    return records_frame([
        {"request_id": i, "model": m, "input_size": 0, "priority": -1, "intended_arrival": a,
         "enqueue": a, "start": a + 0.001, "end": e, "status": st, "worker": 0,
         "batch_size": b, "queue_len_at_arrival": 0, "config_id": "c"}
        for i, (m, a, e, st, b) in enumerate(rows)
    ])


ROWS = [
    ("fast", 0.1, 0.2, "ok", 1),       # warm-up arrival: not a measured request
    ("fast", 1.0, 1.010, "ok", 2),
    ("fast", 1.5, 1.530, "ok", 2),
    ("slow", 2.0, 2.100, "ok", 4),
    ("slow", 2.5, 9.0, "ok", 4),       # arrived in the window, finished after it
    ("fast", 3.0, 3.0, "rejected", 0),
    ("fast", 3.5, math.nan, "not_sent", 0),
]


def test_window_rules_latency_by_arrival_throughput_by_completion() -> None:
    s = summarize(_records(ROWS), Window(1.0, 4.0))
    assert s.requests == 6 and s.offered_rate == pytest.approx(6 / 3.0)
    assert s.status == {"ok": 4, "rejected": 1, "timeout": 0, "error": 0, "not_sent": 1}
    assert s.throughput == pytest.approx(3 / 3.0)  # the 9.0 s completion is past the window
    assert s.ok_throughput == pytest.approx(5 / 9.0)  # every ok over the last completion
    lat = np.array([0.010, 0.030, 0.100, 6.5])
    assert s.latency.n == 4 and s.latency.p50 == pytest.approx(np.percentile(lat, 50))
    assert s.latency.p99 == pytest.approx(np.percentile(lat, 99))
    assert s.latency.max == pytest.approx(6.5)
    assert s.wait.p50 == pytest.approx(0.001)
    assert s.per_model["fast"].latency.n == 2 and s.per_model["slow"].throughput == pytest.approx(1 / 3)
    assert s.mean_batch == pytest.approx(3.0)
    assert s.reward == pytest.approx(reward(s.throughput, s.latency.p99))


def test_a_client_record_has_no_batch_or_wait_and_the_summary_says_so() -> None:
    df = _records([("fast", 0.0, 0.01, "ok", 0)])
    df["start"] = math.nan
    s = summarize(df, Window(0.0, 1.0))
    assert math.isnan(s.mean_batch) and s.wait.n == 0 and math.isnan(s.wait.p99)
    assert s.latency.n == 1


def test_goodput_counts_ok_within_each_models_objective() -> None:
    s = summarize(_records(ROWS), Window(1.0, 4.0), slo_ms={"fast": 20.0, "*": 200.0})
    assert s.slo is not None
    # fast 10 ms and slow 100 ms meet theirs; fast 30 ms and slow 6.5 s do not.
    assert s.slo.goodput == pytest.approx(2 / 3.0) and s.slo.attainment == pytest.approx(2 / 6)
    assert summarize(_records(ROWS), Window(1.0, 4.0), slo_ms=1e6).slo.attainment == 4 / 6


def test_the_dict_form_round_trips_and_is_in_seconds() -> None:
    s = summarize(_records(ROWS), Window(1.0, 4.0), slo_ms=50.0)
    d = s.to_dict()
    assert d["latency_s"]["p50"] < 1.0 and d["window_s"] == [1.0, 4.0]
    assert d["per_model"]["slow"]["n"] == 2 and "throughput" in d["per_model"]["slow"]
    back = Summary.from_dict(json.loads(json.dumps(d)))
    assert json.dumps(back.to_dict(), sort_keys=True) == json.dumps(d, sort_keys=True)


def test_an_empty_run_summarises_to_nan_not_an_error() -> None:
    s = summarize(_records(ROWS)[:0], Window(0.0, 1.0))
    assert s.requests == 0 and s.throughput == 0 and s.latency == Distribution(0)
    assert s.reward == 0.0  # no p99: no reward
