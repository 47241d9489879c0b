"""Window cutting on hand-made records; the reward table's disk form."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from servelab.core.workload import WorkloadSpec
from servelab.meta.arms import arms_from_spec
from servelab.meta.windows import RewardTable, assemble, cut_windows, model_class, normalise


def _records(rows: list[tuple[str, float, float, float, str]]) -> pd.DataFrame:
    """(model, arrival, start, end, status) rows."""
    return pd.DataFrame({
        "request_id": range(len(rows)), "model": [r[0] for r in rows],
        "input_size": [32 if r[0] == "mobilenet_v2" else 174 for r in rows],
        "priority": -1, "intended_arrival": [r[1] for r in rows],
        "enqueue": [r[1] for r in rows], "start": [r[2] for r in rows],
        "end": [r[3] for r in rows], "status": [r[4] for r in rows], "worker": 0,
        "batch_size": 1, "queue_len_at_arrival": 0, "config_id": "x",
    })


def test_cut_windows_by_hand() -> None:
    rec = _records([
        ("mobilenet_v2", 0.1, 0.1, 0.2, "ok"),      # window 0, latency 0.1
        ("mobilenet_v2", 0.5, 0.5, 0.8, "ok"),      # window 0, latency 0.3
        ("distilbert", 0.9, 0.9, 1.4, "ok"),        # arrives in 0, ends in 1: latency 0.5
        ("mobilenet_v2", 1.2, math.nan, math.nan, "rejected"),  # offered in 1, never served
        ("distilbert", 2.5, 2.5, 5.0, "ok"),        # ends after the horizon: dropped
    ])
    w = cut_windows(rec, horizon=3.0, window_s=1.0, cores=2, slo_ms={"mobilenet_v2": 200,
                                                                      "distilbert": 1000})
    assert list(w["window"]) == [0, 1, 2]
    assert list(w["offered"]) == [3.0, 1.0, 1.0]
    assert list(w["throughput"]) == [2.0, 1.0, 0.0]
    assert w["p99_s"][0] == pytest.approx(np.percentile([0.1, 0.3], 99))
    assert w["p99_s"][1] == pytest.approx(0.5)
    assert math.isnan(w["p99_s"][2])
    assert w["reward"][0] == pytest.approx(2.0 / (1 + np.percentile([0.1, 0.3], 99)))
    assert w["reward"][2] == 0.0
    assert list(w["goodput"]) == [1.0, 1.0, 0.0]  # the 0.3 s MobileNet misses its 200 ms
    assert w["fast"][0] == pytest.approx(2 / 3) and w["slow"][0] == pytest.approx(1 / 3)
    assert w["fast"][1] == 1.0 and w["slow"][2] == 1.0
    assert w["input_scale"][0] == pytest.approx(1.0)
    # busy: 0.1 + 0.3 + 0.1 (the DistilBERT's part in window 0) over 2 cores
    assert w["cpu"][0] == pytest.approx(0.5 / 2)
    assert w["cpu"][1] == pytest.approx(0.4 / 2)
    assert w["cpu"][2] == pytest.approx(0.5 / 2)


def test_normalise_keeps_ranking_and_clips() -> None:
    r = np.array([[10.0, 0.0], [5.0, 3.0]])
    n = normalise(r, np.array([10.0, 0.0]), 1.0)
    assert n[0, 0] == 1.0 and n[1, 0] == 0.5
    assert n[1, 1] == 2.0  # 3 over one request per window, clipped


def test_model_class() -> None:
    assert model_class("mobilenet_v2") == "fast"
    assert model_class("lstm_forecaster") == "medium"
    assert model_class("distilbert") == "slow"


def test_table_round_trip(tmp_path) -> None:
    arms = arms_from_spec([{"concurrency": "threads"}, {"concurrency": "processes"}])
    spec = WorkloadSpec.from_dict({"phases": [
        {"duration": 2, "arrival": {"rate": 5}}, {"duration": 1, "arrival": {"rate": 5}}]})
    rec = _records([("mobilenet_v2", 0.1, 0.1, 0.2, "ok"), ("mobilenet_v2", 2.1, 2.1, 2.3, "ok")])
    frames = [cut_windows(rec, 3.0), cut_windows(rec, 3.0)]
    frames[1]["reward"] *= 2
    t = assemble(spec, arms, frames, 1.0, memory=[0.1, 0.2], meta={"k": 1})
    assert list(t.phase) == [0, 0, 1]
    assert t.reward[1, 0] == 2 * t.reward[0, 0]
    t.save(tmp_path / "t.parquet")
    back = RewardTable.load(tmp_path / "t.parquet")
    np.testing.assert_allclose(back.reward, t.reward)
    np.testing.assert_allclose(back.memory, t.memory)
    assert back.phase_starts == (0.0, 2.0) and back.arms == arms
    ctx = back.context(1, 2)
    assert ctx.rate == 1.0 and ctx.memory == pytest.approx(0.2)
