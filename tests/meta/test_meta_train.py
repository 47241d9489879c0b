"""Training: draws are seeded and never a held-out workload; the policy file round-trips."""

from __future__ import annotations

import json

import pytest

from servelab.core.profile import default_profile
from servelab.meta.arms import arms_from_spec
from servelab.meta.policies import make_policy, parse_spec
from servelab.meta.train import (
    Ranges,
    check_held_out,
    draw_workloads,
    held_out_workloads,
    load_policy_file,
    prior_policies,
    train,
)
from servelab.meta.windows import RewardTable
from servelab.sim.executors import LocalExecutor

TINY = Ranges(phases=(2, 2), phase_s=(2.0, 3.0), load=(0.05, 0.1), warmup_s=0.0)


def test_draws_are_seeded_and_held_out() -> None:
    profile = default_profile()
    a = draw_workloads(3, profile, seed=1, ranges=TINY)
    assert [w.to_dict() for w in a] == [w.to_dict() for w in draw_workloads(3, profile, 1, TINY)]
    assert a[0].to_dict() != draw_workloads(1, profile, 2, TINY)[0].to_dict()
    assert all(len(w.phases) == 2 for w in a)
    held = held_out_workloads()
    assert len(held) >= 6 and all(h.name.startswith("shifting") for h in held)
    check_held_out(a, held)
    from dataclasses import replace

    with pytest.raises(ValueError, match="equals the held-out"):
        check_held_out([replace(held[0], name="train-x", seed=99)], held)


def test_parse_spec() -> None:
    assert parse_spec("sw_ucb:window=50,gamma=0.9") == ("sw_ucb", {"window": 50, "gamma": 0.9})
    assert parse_spec("switch_aware:inner=linucb") == ("switch_aware", {"inner": "linucb"})
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("nope", 3)


def test_train_writes_a_json_policy_file_that_loads_back(tmp_path) -> None:
    profile = default_profile()
    arms = arms_from_spec([{"concurrency": "threads", "workers": 2},
                           {"concurrency": "processes", "workers": 2}])
    with LocalExecutor(jobs=1) as ex:
        res = train(profile, arms, ["linucb", "ucb1", "switch_aware:inner=linucb"], ex,
                    tmp_path, n_workloads=2, seed=4, ranges=TINY, command="test",
                    progress=False)
    data = json.loads(res.path.read_text())  # plain JSON, never pickle
    assert data["format"] == "servelab-meta-policy" and data["profile"] == profile.digest
    assert [a["id"] for a in data["arms"]] == arms.ids
    assert data["policies"]["linucb"]["training"]["mode"] == "full information"
    assert data["policies"]["ucb1"]["training"]["mode"] == "bandit replay"
    assert data["policies"]["switch_aware:inner=linucb"]["training"]["mode"] == \
        "full information"
    assert len(list((tmp_path / "tables").glob("*.parquet"))) == 2
    pols = prior_policies(load_policy_file(res.path, arms))
    for spec, p in pols.items():
        assert p.to_dict()["state"] == data["policies"][spec]["policy"]["state"]
        assert 0 <= p.select(None) < len(arms)
    with pytest.raises(ValueError, match="other arms"):
        load_policy_file(res.path, arms_from_spec([{"concurrency": "threads"}]))
    # resume: the cached tables are loaded, not simulated again
    table = RewardTable.load(next((tmp_path / "tables").glob("*.parquet")))
    assert table.n_arms == 2
    with LocalExecutor(jobs=1) as ex:
        again = train(profile, arms, ["ucb1"], ex, tmp_path, n_workloads=2, seed=4,
                      ranges=TINY, progress=False)
    assert again.table_s < res.table_s + 1.0
