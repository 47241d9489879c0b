"""``servelab load`` and ``servelab bench load`` end to end, and the Locust helpers."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pandas as pd
import pytest
import yaml

from servelab.cli import main
from servelab.loadgen.bench import BenchConfig, bench, format_table
from servelab.loadgen.stub import StubProcess


def test_load_command_writes_records_and_a_reproducible_summary(
    fresh_stub: StubProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wl = tmp_path / "wl.yaml"
    wl.write_text(yaml.safe_dump({
        "name": "two-models", "duration": 30, "warmup_s": 5, "seed": 11,
        "arrival": {"kind": "poisson", "rate": 10},
        "mix": {"mobilenet_v2": 0.7, "lstm_forecaster": 0.3},
        "sizes": {"lstm_forecaster": {"kind": "fixed", "value": 96}},
        "priorities": {"mobilenet_v2": 0, "lstm_forecaster": 1},
    }))
    out = tmp_path / "run"
    rc = main(["load", "--workload", str(wl), "--target", fresh_stub.url, "--rate", "200",
               "--duration", "1.5", "--warmup", "0.25", "--out", str(out), "--no-progress"])
    assert rc == 0
    df = pd.read_parquet(out / "records.parquet")
    summary = json.loads((out / "summary.json").read_text())
    gen = summary["generator"]
    assert len(df) == gen["scheduled"] and gen["counts"]["ok"] == len(df)
    assert summary["requests"] == int((df["intended_arrival"] >= 0.25).sum())
    assert gen["target_rate"] == pytest.approx(200.0)
    assert set(summary["per_model"]) == {"mobilenet_v2", "lstm_forecaster"}
    for key in ("p50", "p90", "p95", "p99", "p999"):
        assert 0 < summary["latency_s"][key] < 1.0  # seconds
    assert gen["warmup_excluded"] == int((df["intended_arrival"] < 0.25).sum())
    assert "lag_s" in gen and "lag_p99_ok" in gen and summary["window_s"] == [0.25, 1.5]
    assert "reproduce:" in capsys.readouterr().out

    # the recorded command line reproduces the same schedule
    argv = shlex.split(summary["command"])
    assert argv[:2] == ["servelab", "load"]
    out2 = tmp_path / "again"
    assert main([*argv[1:], "--out", str(out2), "--no-progress"]) == 0
    df2 = pd.read_parquet(out2 / "records.parquet")
    assert df2["intended_arrival"].tolist() == df["intended_arrival"].tolist()
    assert df2["model"].tolist() == df["model"].tolist()


def test_load_command_reports_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["load", "--workload", "no-such-workload", "--no-progress"]) == 2
    assert "unknown workload" in capsys.readouterr().err


def test_bench_load_reports_rate_and_lag(tmp_path: Path) -> None:
    result = bench(BenchConfig(rate=300, duration=1.0, warmup=0.2, processes=(1,),
                               out=str(tmp_path)), progress=False)
    (row,) = result["runs"]
    assert row["achieved_rate"] == pytest.approx(300, rel=0.1)
    assert 0 <= row["lag_p99_s"] < 1.0 and row["ok"] == row["requests"]
    assert "servelab bench load" in result["command"]
    assert (tmp_path / "summary.json").exists() and (tmp_path / "p1" / "records.parquet").exists()
    assert "achieved" in format_table(result)


def test_bench_load_drives_a_real_server_with_the_noop_model(tmp_path: Path) -> None:
    """``--server servelab``: the same measurement against ``servelab serve`` (async, inline,
    noop); every request is answered by the real request path."""
    result = bench(BenchConfig(rate=100, duration=1.0, warmup=0.2, processes=(1,),
                               server="servelab", out=str(tmp_path)), progress=False)
    (row,) = result["runs"]
    assert row["ok"] == row["requests"] > 50
    records = pd.read_parquet(tmp_path / "p1" / "records.parquet")
    assert set(records["model"]) == {"noop"} and (records["http_status"] == 200).all()
    assert "--server servelab" in result["command"]


def test_locustfile_helpers_work_without_locust(monkeypatch: pytest.MonkeyPatch) -> None:
    from servelab.loadgen import locustfile

    monkeypatch.setenv("SERVELAB_WORKLOAD", "mixed")
    monkeypatch.setenv("SERVELAB_RATE", "50")
    locustfile.workload.cache_clear()
    spec = locustfile.workload()
    assert spec.mean_rate() == pytest.approx(50.0)
    pool = locustfile.RequestPool(spec, n=64)
    model, path, body, headers = pool.sample()
    assert path == f"/v2/models/{model}/infer"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["inputs"]
    assert {m for m, *_ in pool.items} <= set(spec.models)
    locustfile.workload.cache_clear()
