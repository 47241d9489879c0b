"""``servelab bench bandits`` runs and writes its summary (timings are not asserted: benchmarks
are commands, not timed tests)."""

from __future__ import annotations

import json

from servelab.core.bandits import BANDITS
from servelab.meta import cmd_bench_bandits as bench
from servelab.reproduce import parse


def test_bench_writes_a_row_per_policy_and_arm_count(tmp_path, capsys):
    args = parse("bench bandits", bench.add_arguments,
                 ["--steps", "200", "--arms", "3", "27", "--out", str(tmp_path)])
    assert bench.run(args) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [(r["policy"], r["arms"]) for r in summary["rows"]] == [
        (name, n) for n in (3, 27) for name in BANDITS]
    assert all(r["p50_s"] <= r["p99_s"] <= r["max_s"] for r in summary["rows"])
    assert all(0 < r["block_mean_s"] < 1 for r in summary["rows"])
    out = capsys.readouterr().out
    assert summary["target_s"] == 50e-6 and "target 50 µs" in out
    assert summary["command"] == "servelab bench bandits --arms 3 27 --steps 200"
    assert "reproduce: servelab bench bandits" in out
