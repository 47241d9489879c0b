"""The study's metrics on known records: Jain's index, a cell's waits, starvation, slowdowns and
throughput, and live slowdowns against the FIFO cell of the same load."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from servelab.analysis.sched_study import metrics as M


def test_jain_index():
    assert M.jain([2.0, 2.0, 2.0]) == pytest.approx(1.0)
    assert M.jain([1.0, 0.0, 0.0]) == pytest.approx(1 / 3)
    assert M.jain([1.0, 3.0]) == pytest.approx(16 / 20)
    assert math.isnan(M.jain([]))


def test_cell_metrics_on_known_records():
    # Two classes; one request before the warm-up (left out), one rejected.
    rec = pd.DataFrame({
        "model": ["a", "a", "b", "b", "a", "b"],
        "enqueue": [0.5, 1.0, 1.0, 2.0, 3.0, 3.5],
        "start": [0.5, 1.0, 1.5, 3.0, 3.0, 3.5],
        "end": [0.6, 1.1, 2.5, 4.0, 3.1, 3.5],
        "status": ["ok", "ok", "ok", "ok", "ok", "rejected"],
    })
    m = M.cell_metrics(rec, start=1.0, stop=5.0, models=("a", "b"), service_ref={"a": 0.1, "b": 1.0})
    assert m["wait_mean_a"] == pytest.approx(0.0) and m["wait_mean_b"] == pytest.approx(0.75)
    assert m["wait_max_b"] == pytest.approx(1.0)
    assert m["starved_class"] == "b" and m["starved_max_wait"] == pytest.approx(1.0)
    assert m["rejected"] == 1 and m["ok"] == 4
    assert m["throughput"] == pytest.approx(4 / 4.0)
    # Slowdowns: a = 0.1 / 0.1 = 1; b = mean(1.5, 2.0) / 1.0 = 1.75.
    assert m["slowdown_a"] == pytest.approx(1.0) and m["slowdown_b"] == pytest.approx(1.75)
    assert m["jain"] == pytest.approx(M.jain([1.0, 1.75]))


def test_live_slowdowns_use_the_fifo_cell_of_the_same_load():
    # Live cells measure their own service times; the study rescales every cell's slowdowns
    # (and Jain) by the FIFO cell of the same (concurrency, load), as the simulation does.
    models = ("a", "b")
    cells = pd.DataFrame({
        "policy": ["fifo", "sjf-learned", "fifo", "sjf-learned", "mlfq"],
        "concurrency": ["threads"] * 4 + ["processes"],
        "load": [0.5, 0.5, 0.8, 0.8, 0.5],
        "service_mean_a": [0.1, 0.05, 0.2, 0.3, 0.1],
        "service_mean_b": [1.0, 2.0, 0.5, 0.4, 1.0],
        "sojourn_mean_a": [0.2, 0.1, 0.4, 0.3, 0.2],
        "sojourn_mean_b": [3.0, 4.0, 1.0, 2.0, 3.0],
        "slowdown_a": [np.nan] * 5, "slowdown_b": [np.nan] * 5, "jain": [np.nan] * 5,
    })
    out = M.add_live_slowdown(cells, models)
    assert out["slowdown_a"].tolist()[:4] == pytest.approx([2.0, 1.0, 2.0, 1.5])
    assert out["slowdown_b"].tolist()[:4] == pytest.approx([3.0, 4.0, 2.0, 4.0])
    assert out["jain"].tolist()[:4] == pytest.approx(
        [M.jain([2.0, 3.0]), M.jain([1.0, 4.0]), M.jain([2.0, 2.0]), M.jain([1.5, 4.0])])
    # No FIFO cell at (processes, 0.5): left as measured; no FIFO at all: unchanged.
    assert math.isnan(out["slowdown_a"].iloc[4]) and math.isnan(out["jain"].iloc[4])
    no_fifo = cells[cells["policy"] != "fifo"]
    pd.testing.assert_frame_equal(M.add_live_slowdown(no_fifo, models), no_fifo)
