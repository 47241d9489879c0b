"""The eval oracle is the argmax over an explicitly simulated grid; eval runs end to end."""

from __future__ import annotations

import json

import numpy as np

from servelab.cli import main
from servelab.core.profile import default_profile
from servelab.core.workload import WorkloadSpec
from servelab.meta.arms import arms_from_spec
from servelab.meta.evaluate import evaluate
from servelab.meta.metrics import oracle_arms
from servelab.meta.replay import SwitchCosts
from servelab.meta.windows import build_tables
from servelab.sim.executors import LocalExecutor
from servelab.sim.run import simulate

ARMS = [{"concurrency": "threads", "workers": 1},
        {"concurrency": "processes", "workers": 2},
        {"concurrency": "threads", "workers": 2, "scheduler": "sjf"}]
WORKLOAD = {"name": "tiny-shift", "seed": 3, "mix": {"mobilenet_v2": 1.0}, "phases": [
    {"duration": 3, "arrival": {"kind": "poisson", "rate": 30}},
    {"duration": 3, "arrival": {"kind": "poisson", "rate": 3},
     "mix": {"distilbert": 1.0}}]}


def test_oracle_is_the_argmax_of_the_simulated_grid(tmp_path) -> None:
    profile = default_profile()
    arms = arms_from_spec(ARMS)
    spec = WorkloadSpec.from_dict(WORKLOAD)
    with LocalExecutor(jobs=1) as ex:
        [table] = build_tables([spec], arms, profile, ex, cache_dir=tmp_path, progress=False)
    # By hand: simulate each arm, reward per 1 s window of the completions, mean per phase.
    means = np.zeros((len(arms), 2))
    for a in arms:
        rec = simulate(a.config, spec, profile, seed=spec.seed).records
        ok = rec[rec["status"] == "ok"]
        for w in range(6):
            done = ok[(ok["end"] >= w) & (ok["end"] < w + 1)]
            lat = (done["end"] - done["intended_arrival"]).to_numpy()
            r = len(done) / (1 + np.percentile(lat, 99)) if len(done) else 0.0
            means[a.index, w // 3] += r / 3
    np.testing.assert_allclose(table.reward.reshape(3, 2, 3).mean(axis=2), means)
    assert list(oracle_arms(table)) == [int(np.argmax(means[:, 0])), int(np.argmax(means[:, 1]))]
    # the cache is used the second time (same table, nothing simulated)
    with LocalExecutor(jobs=1) as ex:
        [again] = build_tables([spec], arms, profile, ex, cache_dir=tmp_path, progress=False)
    np.testing.assert_allclose(again.reward, table.reward)

    res = evaluate([spec], profile, arms, ["ucb1"], LocalExecutor(jobs=1), tmp_path / "eval",
                   cache_dir=tmp_path, costs=SwitchCosts.free(), plots=False, progress=False)
    names = {s["policy"] for s in res.scores}
    assert names == {"oracle", "best-static", "random", "round-robin", "ucb1 (cold)"}
    oracle = next(s for s in res.scores if s["policy"] == "oracle")
    assert oracle["oracle_share"] == 1.0 and oracle["adaptation_s"] == [0.0]
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["targets"]["best_policy"] == "ucb1 (cold)"


def test_meta_eval_command(tmp_path, capsys) -> None:
    arms = tmp_path / "arms.json"
    arms.write_text(json.dumps(ARMS[:2]))
    wl = tmp_path / "wl.json"
    wl.write_text(json.dumps(WORKLOAD))
    out = tmp_path / "out"
    rc = main(["meta", "eval", "--workload", str(wl), "--arms", str(arms), "--policy", "ucb1",
               "--jobs", "1", "--no-progress", "--cache", str(tmp_path / "cache"),
               "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "oracle_share" in text and "ucb1 (cold)" in text
    assert "reproduce: servelab meta eval" in text
    assert (out / "windows.parquet").exists() and (out / "reward-tiny-shift.png").exists()
    assert (out / "regret-tiny-shift.png").exists()
