"""The scheduling study: its metrics, the theory check, the simulated grid, the learned predictor
wired into a live server's engine, and the command end to end on tiny models."""

from __future__ import annotations

import argparse
import json
import math
import types

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from servelab.analysis import cmd_sched_study
from servelab.analysis import predictor as P
from servelab.analysis import sched_report as R
from servelab.analysis import sched_study as S
from servelab.analysis.sched_theory import phipps_wait_mean, theory_check
from servelab.core import learned as core_learned
from servelab.core.config import ServerConfig
from servelab.core.predictor import MeanPredictor
from servelab.core.profile import default_profile
from servelab.sim import theory
from servelab.workloads import load_workload

MODELS = ("mobilenet_v2", "lstm_forecaster", "distilbert")


@pytest.fixture(scope="module")
def mixed():
    return load_workload("mixed")


def test_jain_index():
    assert S.jain([2.0, 2.0, 2.0]) == pytest.approx(1.0)
    assert S.jain([1.0, 0.0, 0.0]) == pytest.approx(1 / 3)
    assert S.jain([1.0, 3.0]) == pytest.approx(16 / 20)
    assert math.isnan(S.jain([]))


def test_cell_metrics_on_known_records():
    # Two classes; one request before the warm-up (left out), one rejected.
    rec = pd.DataFrame({
        "model": ["a", "a", "b", "b", "a", "b"],
        "enqueue": [0.5, 1.0, 1.0, 2.0, 3.0, 3.5],
        "start": [0.5, 1.0, 1.5, 3.0, 3.0, 3.5],
        "end": [0.6, 1.1, 2.5, 4.0, 3.1, 3.5],
        "status": ["ok", "ok", "ok", "ok", "ok", "rejected"],
    })
    m = S.cell_metrics(rec, start=1.0, stop=5.0, models=("a", "b"), service_ref={"a": 0.1, "b": 1.0})
    assert m["wait_mean_a"] == pytest.approx(0.0) and m["wait_mean_b"] == pytest.approx(0.75)
    assert m["wait_max_b"] == pytest.approx(1.0)
    assert m["starved_class"] == "b" and m["starved_max_wait"] == pytest.approx(1.0)
    assert m["rejected"] == 1 and m["ok"] == 4
    assert m["throughput"] == pytest.approx(4 / 4.0)
    # Slowdowns: a = 0.1 / 0.1 = 1; b = mean(1.5, 2.0) / 1.0 = 1.75.
    assert m["slowdown_a"] == pytest.approx(1.0) and m["slowdown_b"] == pytest.approx(1.75)
    assert m["jain"] == pytest.approx(S.jain([1.0, 1.75]))


def test_phipps_empirical_matches_the_exponential_closed_form():
    s = np.random.default_rng(0).exponential(1.0, 400_000)
    for rho in (0.5, 0.8):
        assert phipps_wait_mean(rho, s) == pytest.approx(
            theory.sjf_wait_mean_exponential(rho, 1.0), rel=0.02)


def test_theory_check_on_the_mixed_distribution(mixed):
    rows = theory_check(default_profile(), mixed, rhos=(0.5, 0.8), requests=60_000, seed=0)
    assert [(r.policy, r.rho) for r in rows] == [
        ("fifo", 0.5), ("sjf-oracle", 0.5), ("fifo", 0.8), ("sjf-oracle", 0.8)]
    for r in rows:
        assert r.halfwidth_s <= 0.25 * r.theory_s, r  # the interval is informative
        assert r.agrees, r  # within 5% of theory, or theory inside the 95% interval
    by = {(r.policy, r.rho): r for r in rows}
    for rho in (0.5, 0.8):  # SJF's gain on this distribution, in theory and in simulation
        assert by["sjf-oracle", rho].theory_s < 0.8 * by["fifo", rho].theory_s
        assert by["sjf-oracle", rho].sim_s < 0.8 * by["fifo", rho].sim_s


def test_simulated_grid_sjf_beats_fifo_and_learned_tracks_oracle(mixed):
    with threadpool_limits(1):
        sim = S.run_sim(default_profile(), mixed, ["processes"], [0.8],
                        ["fifo", "sjf-learned", "sjf-oracle", "mlfq"], workers=2,
                        requests=4000, seed=0)
    assert sim.predictor_mape["overall"] < 10.0
    (t,) = R.targets(sim.cells, MODELS)
    assert t["sjf-learned_cut"] >= 0.2 and t["sjf-oracle_cut"] >= 0.2
    assert t["learned_over_oracle"] < 1.15
    assert t["mlfq_fast_wait_cut"] > 0  # preemption shields the fast classes...
    assert t["mlfq_slow_sojourn_change"] > 0  # ...at DistilBERT's expense
    assert set(sim.waits["policy"]) == {"fifo", "sjf-learned", "sjf-oracle", "mlfq"}
    assert "sim" in R.format_cells(sim.cells, MODELS)


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
    out = S._add_live_slowdown(cells, models)
    assert out["slowdown_a"].tolist()[:4] == pytest.approx([2.0, 1.0, 2.0, 1.5])
    assert out["slowdown_b"].tolist()[:4] == pytest.approx([3.0, 4.0, 2.0, 4.0])
    assert out["jain"].tolist()[:4] == pytest.approx(
        [S.jain([2.0, 3.0]), S.jain([1.0, 4.0]), S.jain([2.0, 2.0]), S.jain([1.5, 4.0])])
    # No FIFO cell at (processes, 0.5): left as measured; no FIFO at all: unchanged.
    assert math.isnan(out["slowdown_a"].iloc[4]) and math.isnan(out["jain"].iloc[4])
    no_fifo = cells[cells["policy"] != "fifo"]
    pd.testing.assert_frame_equal(S._add_live_slowdown(no_fifo, models), no_fifo)


def test_study_command_end_to_end_on_tiny_models(tmp_path, capsys):
    """The command's wiring, on the least that exercises all of it: the theory check off; the
    mixed workload without DistilBERT (its transformers import and tokenised bodies would add
    ~5 s to each server start and to the client); a two-policy simulated cell whose learned
    predictor is trained on simulated traces; live, one server for the phase-1 traces and one
    sjf-learned server that loads the predictor trained on them.  Server starts dominate, so
    there are two: the policies' effects are the simulated grid's test, the FIFO-referenced
    live slowdowns the test above."""
    workload = tmp_path / "fast-mix.yaml"
    workload.write_text(
        "duration: 60\nwarmup_s: 5\nseed: 3\narrival: {kind: poisson, rate: 20}\n"
        "mix: {mobilenet_v2: 0.7, lstm_forecaster: 0.3}\n"
        "priorities: {mobilenet_v2: 0, lstm_forecaster: 1}\n")
    parser = argparse.ArgumentParser()
    cmd_sched_study.add_arguments(parser)
    out = tmp_path / "study"
    args = parser.parse_args([
        "--out", str(out), "--workload", str(workload), "--loads", "0.8", "--seed", "1",
        "--sim-concurrency", "threads", "--sim-policies", "fifo", "sjf-learned",
        "--sim-requests", "1500", "--theory-requests", "0",
        "--variant", "tiny", "--live-concurrency", "threads",
        # Short live phases: phase 1's ~90 traces train the predictor, the phase-2 cell keeps
        # ~50 requests after its warm-up.
        "--live-policies", "sjf-learned", "--live-duration", "2", "--live-warmup", "0.3",
        "--live-capacity", "40", "--trace-step", "1", "--server-warmup", "0.3",
    ])
    with threadpool_limits(1):
        assert cmd_sched_study.run(args) == 0
    text = capsys.readouterr().out
    assert "reproduce: servelab sched-study" in text and "Live (tiny models" in text
    assert "sim threads at 80% of capacity" in text
    for name in ("sim.parquet", "live.parquet", "waits.parquet", "live_records.parquet",
                 "waits.png", "summary.json", "predictor-threads.joblib",
                 "traces/phase1-threads.parquet"):
        assert (out / name).exists(), name
    sim = pd.read_parquet(out / "sim.parquet")
    assert sorted(sim["policy"]) == ["fifo", "sjf-learned"]
    live = pd.read_parquet(out / "live.parquet")
    assert live["policy"].tolist() == ["sjf-learned"]
    assert (live["ok"] > 0).all() and (live["throughput"] > 0).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sim"]["predictor_held_out_mape"]["overall"] > 0
    assert summary["live"]["predictor"]["threads"]["phase2_rows"] > 0
    # The sjf-learned server served with the predictor trained on phase 1's traces.
    server_log = (out / "server-threads-sjf-learned.log").read_text()
    assert f"learned predictor {out / 'predictor-threads.joblib'}:" in server_log
    assert "--live-capacity 40" in summary["command"]
    waits = pd.read_parquet(out / "waits.parquet")
    assert set(zip(waits["source"], waits["policy"], strict=True)) == {
        ("sim", "fifo"), ("sim", "sjf-learned"), ("live", "sjf-learned")}
