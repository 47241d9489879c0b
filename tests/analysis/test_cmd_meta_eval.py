"""``servelab meta eval --live``: the arguments it hands the live run (the run itself is the
adaptive demo's, tested end to end in test_adaptive_demo.py)."""

from __future__ import annotations

from pathlib import Path

from servelab import cli
from servelab.analysis import adaptive_demo


def test_live_runs_each_workload_through_the_adaptive_run(monkeypatch, tmp_path, capsys):
    seen = []

    def fake(cfg, out, profile, command, say=print):
        seen.append((cfg, out, profile, command))
        return {}

    monkeypatch.setattr(adaptive_demo, "run_demo", fake)
    rc = cli.main(["meta", "eval", "--live", "--workload", "shifting-demo", "bursty",
                   "--policy", "ucb1", "--variant", "tiny", "--duration", "9", "--prewarm",
                   "--out", str(tmp_path)])
    assert rc == 0
    assert [c.workload for c, *_ in seen] == ["shifting-demo", "bursty"]
    cfg, out, profile, command = seen[0]
    assert cfg.policy == "ucb1" and cfg.variant == "tiny" and cfg.duration == 9.0
    assert cfg.prewarm and profile is None and out == Path(tmp_path) / "shifting-demo"
    assert command.startswith("servelab meta eval ") and "--live" in command
    assert "reproduce: servelab meta eval" in capsys.readouterr().out


def test_live_refuses_two_policies(capsys):
    rc = cli.main(["meta", "eval", "--live", "--policy", "ucb1", "linucb"])
    assert rc == 2 and "one policy" in capsys.readouterr().err
