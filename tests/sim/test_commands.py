"""The sim commands, driven through their own argument parsers (as the CLI does)."""

from __future__ import annotations

import argparse
import json

import pandas as pd
import pytest

from servelab.core.profile import default_profile
from servelab.core.requests import RECORD_COLUMNS
from servelab.sim import cmd_bench, cmd_simulate, cmd_sweep, inputs


def _run(module, argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return module.run(parser.parse_args(argv))


def test_simulate_writes_records_and_summary(tmp_path, capsys):
    out = tmp_path / "sim"
    rc = _run(cmd_simulate, ["--workload", "fast-only", "--duration", "5", "--concurrency",
                             "processes", "--workers", "3", "--slo-ms", "20", "--out", str(out)])
    assert rc == 0
    rec = pd.read_parquet(out / "records.parquet")
    assert tuple(rec.columns[: len(RECORD_COLUMNS)]) == RECORD_COLUMNS
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["concurrency"] == "processes" and summary["config"]["workers"] == 3
    assert summary["workload"] == "fast-only" and summary["slo_ms"] == 20.0
    assert summary["profile_source"] == "design-doc defaults, not calibrated"
    text = capsys.readouterr().out
    assert "throughput" in text and "mobilenet_v2" in text and "p99" in text


def test_simulate_reads_profile_and_config_files(tmp_path):
    prof = tmp_path / "profile.json"
    default_profile().save(prof)
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"concurrency": "async", "offload": "inline", "workers": 1}))
    out = tmp_path / "o"
    assert _run(cmd_simulate, ["--workload", "fast-only", "--duration", "3", "--profile",
                               str(prof), "--config", str(cfg), "--scheduler", "sjf",
                               "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["config"]["concurrency"] == "async" and s["config"]["offload"] == "inline"
    assert s["config"]["scheduler"] == "sjf"  # a flag that differs from its default wins


def test_simulate_slo_parsing():
    assert inputs.parse_slo(None) is None
    assert inputs.parse_slo(["50"]) == 50.0
    assert inputs.parse_slo(["mobilenet_v2=20", "*=500"]) == {"mobilenet_v2": 20.0, "*": 500.0}
    with pytest.raises(ValueError):
        inputs.parse_slo(["-3"])
    with pytest.raises(ValueError):
        inputs.parse_slo(["50", "60"])


def test_sweep_command_writes_table_and_oracle_and_resumes(tmp_path, capsys):
    out = tmp_path / "sw"
    argv = ["--workloads", "fast-only", "--duration", "4", "--grid",
            "concurrency=threads,processes", "workers=1,2", "--objective", "goodput",
            "--slo-ms", "30", "--jobs", "1", "--no-progress", "--out", str(out)]
    assert _run(cmd_sweep, argv) == 0
    table = pd.read_parquet(out / "sweep.parquet")
    assert len(table) == 4
    oracle = pd.read_parquet(out / "oracle.parquet")
    assert len(oracle) == 1 and oracle["best_config"].iloc[0] in set(table["config_id"])
    assert json.loads((out / "oracle.json").read_text())["objective"] == "goodput"
    assert json.loads((out / "sweep.json").read_text())["points"] == 4
    assert _run(cmd_sweep, argv) == 0
    assert "ran 0, skipped 4" in capsys.readouterr().out
    with pytest.raises(ValueError, match="needs --slo-ms"):
        _run(cmd_sweep, ["--objective", "goodput", "--out", str(tmp_path / "x")])


def test_bench_sim_quick(tmp_path, capsys):
    out = tmp_path / "bench"
    assert _run(cmd_bench, ["--requests", "3000", "--repeats", "1", "--quick", "--out", str(out)]) == 0
    report = json.loads((out / "bench.json").read_text())
    assert report["sim_req_per_cpu_s"] > 0 and report["bare_simpy_req_per_cpu_s"] > 0
    assert report["ratio_sim_to_bare"] == pytest.approx(
        report["sim_req_per_cpu_s"] / report["bare_simpy_req_per_cpu_s"]
    )
    assert "bare SimPy" in capsys.readouterr().out
