"""``servelab gil-study`` end to end, tiny: results, table and plot are written."""

from __future__ import annotations

import argparse
import json

import pandas as pd

from servelab.analysis import cmd_gil_study as gil_study


def run_command(argv: list[str]) -> int:
    """What ``servelab gil-study ARGV`` runs (the CLI table maps the name to this module)."""
    parser = argparse.ArgumentParser(prog="servelab gil-study")
    gil_study.add_arguments(parser)
    return gil_study.run(parser.parse_args(argv))


def test_gil_study_quick(tmp_path, capsys):
    out = tmp_path / "run"
    rc = run_command([
        "--variants", "c-release", "python", "--workers", "1", "2",
        "--duration", "0.15", "--warmup", "0.02", "--ops", "lstm", "preprocess",
        "--model-variant", "tiny", "--out", str(out),
    ])
    assert rc == 0
    df = pd.read_parquet(out / "gil_study.parquet")
    assert len(df) == 2 * 2 * 2 * 2  # ops x variants x modes x workers
    assert (df.calls > 0).all() and (df.cpu_s > 0).all()
    assert {"speedup", "efficiency", "cpu_per_wall", "vol_ctx", "invol_ctx"} <= set(df.columns)
    assert (df[df.workers == 1].speedup == 1.0).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["command"].startswith("servelab gil-study --variants c-release python")
    assert summary["machine"]["cores"] >= 1 and summary["table"]
    assert (out / "gil_study.png").stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "reproduce: servelab gil-study" in printed and "shared with other jobs" in printed
