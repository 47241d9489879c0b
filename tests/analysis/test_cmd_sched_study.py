"""``servelab sched-study`` end to end on tiny models."""

from __future__ import annotations

import argparse
import json

import pandas as pd
from threadpoolctl import threadpool_limits

from servelab.analysis import cmd_sched_study


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
