"""The live side's pieces: the learned predictor wired into a live server's engine (what an
sjf-learned server runs), and server traces and calibration samples read as training rows."""

from __future__ import annotations

import json
import types

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from servelab.analysis import predictor as P
from servelab.core import learned as core_learned
from servelab.core.config import ServerConfig
from servelab.core.predictor import MeanPredictor


def test_live_engine_orders_by_the_learned_predictor(tmp_path):
    from servelab.servers.base import ServeOptions, make_predictor
    from servelab.servers.engine import Engine

    # One OpenMP thread, as the other tests that train here: on a busy 2-core machine the
    # boosting's OpenMP barriers spin (54 s in one suite run; 2-3 s on one thread).
    with threadpool_limits(1):
        pred = P.train(P.synthetic_traces(6000, seed=1), seed=0)
        path = tmp_path / "p.joblib"
        core_learned.save(pred, path)
        config = ServerConfig(scheduler="sjf", workers=2, queue_capacity=16)
        learned = make_predictor(str(path), config)
    assert learned.context.workers == 2 and learned._tables  # tables built before serving
    eng = Engine(config, predictor=learned, sample_cpu=False)
    eng.cpu = types.SimpleNamespace(value=70.0, close=lambda: None)  # a CPU sample, in percent
    try:
        row = [{"x": np.zeros((1, 2), np.float32)}]
        for model, size in (("distilbert", 400), ("lstm_forecaster", 96), ("mobilenet_v2", 32),
                            ("distilbert", 20), ("lstm_forecaster", 720)):
            eng.submit(model, row, input_size=size)
        assert learned.context.cpu_util == pytest.approx(0.7)
        order = [eng.take(timeout=1).lead.id for _ in range(5)]
        assert order == [1, 2, 4, 3, 0]
    finally:
        eng.close()
    assert isinstance(make_predictor("mean", config), MeanPredictor)
    with pytest.raises(ValueError, match="simulation only"):
        ServeOptions(predictor="oracle")


def test_prepare_reads_server_traces_and_calibration_samples():
    trace = pd.DataFrame({
        "model": ["a", "a", "a"], "input_size": [1, 2, 3], "start": [0.0, 1.0, 2.0],
        "end": [0.5, 1.2, 2.9], "status": ["ok", "ok", "ok"], "preemptions": [0, 0, 2],
        "queue_len_at_arrival": [0, 3, 1], "cpu_util_at_arrival": [50.0, float("nan"), 20.0],
        "config_id": ["processes-sjf-w4-b1-abcdef"] * 3,
    })
    out = P.prepare(trace)
    assert len(out) == 2  # the preempted request's end - start is not a service time
    assert out["cpu_util"].tolist() == pytest.approx([0.5, 0.0])
    assert out["concurrency"].tolist() == ["processes"] * 2 and out["workers"].tolist() == [4, 4]
    samples = pd.DataFrame({
        "point_id": ["p"] * 3, "bench": ["service"] * 3,
        "params": [json.dumps({"model": "distilbert", "variant": "full"})] * 3,
        "metric": ["sample", "total@64x1", "total@128x4"], "index": [0, 0, 0],
        "value": [9.0, 0.13, 0.9],
    })
    cal = P.calibration_traces(samples, "full")
    assert cal[["input_size", "batch_size"]].values.tolist() == [[64, 1], [128, 4]]
    assert cal["service_time"].tolist() == pytest.approx([0.13, 0.9])
    assert P.calibration_traces(samples, "tiny").empty
    both = P.prepare(pd.concat([trace, cal], ignore_index=True))
    assert len(both) == 4 and both["service_time"].notna().all()
