"""``servelab best-config``: configurations, features, labels and live decisions on tiny inputs,
and the real thing on a synthetic profile whose answer is known (a GIL-holding heavy model must
go to processes, a tiny fast one stays in one interpreter)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from servelab.analysis.best_config import classify as C
from servelab.analysis.best_config import live as L
from servelab.analysis.best_config import study as S
from servelab.analysis.best_config.dataset import build_samples, label, shares
from servelab.analysis.best_config.features import workload_features
from servelab.analysis.best_config.rules import leaf_rules
from servelab.analysis.best_config.space import (
    Draw,
    bursty_arrival,
    config_key,
    default_configs,
    draw_workloads,
)
from servelab.analysis.validate.grid import SETUPS, Cell
from servelab.core.profile import default_profile, queueing_profile
from servelab.core.profile_parts import CostCurve, IpcCost, ModelProfile
from servelab.core.workload import ArrivalSpec, WorkloadSpec
from servelab.sim.executors import make_executor

KEYS = ("threads-w2-fifo", "processes-w2-fifo", "async-inline-w2-fifo")


def gil_profile():
    """Two cores; ``heavy``: 40 ms holding the GIL throughout; ``tiny``: 0.3 ms; a 1.5 ms
    hand-off to a worker process."""
    ms = 1e-3
    return replace(default_profile(), models={
        "heavy": ModelProfile(forward=CostCurve(fixed_s=40 * ms), gil_share=1.0, stages=2, cv=0.1),
        "tiny": ModelProfile(forward=CostCurve(fixed_s=0.3 * ms), gil_share=1.0, cv=0.1),
    }, ipc=IpcCost(fixed_s=1.5 * ms, per_byte_s=1e-9))


def test_configurations_are_the_arms_plus_validates_and_share_its_keys():
    keys = [config_key(c) for c in default_configs()]
    assert len(keys) == len(set(keys)) == 11
    assert {"threads-w1-fifo", "async-inline-w2-fifo", "processes-w4-fifo",
            "async-process-w2-fifo"} <= set(keys)
    # the key of a validate cell's server is the cell's own key: live points match
    for setup in SETUPS:
        cell = Cell(setup, 2, "sjf")
        assert config_key(cell.config(("mobilenet_v2",))) == cell.key
    assert len(default_configs(("fifo", "sjf"))) == 22


def test_features_of_a_known_workload():
    p = queueing_profile({"a": 0.010, "b": 0.050}, cores=2)
    spec = WorkloadSpec(duration=10, arrival=ArrivalSpec(kind="poisson", rate=20),
                        mix={"a": 3, "b": 1})
    f = workload_features(spec, p, ["a", "b"])
    assert f["rate"] == 20 and f["burst"] == 1.0
    assert f["share_a"] == pytest.approx(0.75) and f["share_b"] == pytest.approx(0.25)
    assert f["service_s"] == pytest.approx(0.75 * 0.010 + 0.25 * 0.050)
    assert f["cpu_load"] == pytest.approx(20 * 0.020 / 2)  # rate x mean service / cores
    mmpp = bursty_arrival(20, 3.0)
    assert mmpp.mean_rate == pytest.approx(20) and mmpp.rate_high == pytest.approx(60)
    assert workload_features(replace(spec, arrival=mmpp), p, ["a", "b"])["burst"] == \
        pytest.approx(3.0)


def test_labels_runner_up_margin_and_reward_share():
    r = pd.DataFrame({"x": [10.0, 5.0, 0.0], "y": [8.0, 5.0, 0.0], "z": [1.0, 6.0, 0.0]},
                     index=["w1", "w2", "w3"])
    lab = label(r)
    assert lab["best"].tolist() == ["x", "z", "x"]  # a tie goes to the first column
    assert lab["runner_up"].tolist()[:2] == ["y", "x"]
    assert lab["margin"].tolist() == pytest.approx([0.2, 1 / 6, 0.0])
    assert shares(r.to_numpy(), np.array([1, 0, 2])).tolist() == pytest.approx([0.8, 5 / 6, 1.0])


def test_rules_read_the_tree_in_os_terms():
    X = np.linspace(0, 1, 40)[:, None]
    y = np.where(X[:, 0] > 0.5, "processes-w2-fifo", "threads-w2-fifo")
    tree = C.models()["tree"]().fit(X, y)
    rules = leaf_rules(tree, ["cpu_load"])
    assert {r["config"] for r in rules} == set(y) and all(r["purity"] == 1 for r in rules)
    text = " ".join(r["text"] for r in rules)
    assert "offered CPU load" in text and "GIL per worker process" in text
    X = np.linspace(0.001, 0.040, 40)[:, None]  # CPU per request, seconds
    y = np.where(X[:, 0] > 0.0205, "processes-w2-fifo", "threads-w2-fifo")
    rule = leaf_rules(C.models()["tree"]().fit(X, y), ["service_s"])[0]
    assert "mean CPU per request (ms) <= 20" in rule["text"] or \
        "mean CPU per request (ms) > 20" in rule["text"]  # seconds in data, ms in words
    assert max(b for b in rule["conditions"]["service_s"] if b is not None) < 1


def test_live_decisions_pick_among_the_measured_and_count_a_copy_once():
    rows = []
    for run in ("validate-a", "validate-a-resim"):  # the second is a re-simulated copy
        for cell, rew in (("threads-w2-fifo", 9.0), ("processes-w2-fifo", 10.0),
                          ("threads-w8-fifo", 1.0)):
            rows.append({"run": run, "workload": "fast-only", "load": 0.8, "cell": cell,
                         "key": f"fast-only|{cell}|0.8|r0", "finished_at": "t" + cell,
                         "live_reward": rew, "sim_reward": 10.0 - rew, "rate": 50.0,
                         "duration": 4.0, "warmup": 1.0, "seed": 7, "repeat": 0})
    pts = pd.DataFrame(rows).drop_duplicates(subset=["key", "finished_at", "live_reward"])
    assert len(pts) == 3
    dec = L.decisions(pts, ["threads-w2-fifo", "processes-w2-fifo", "async-inline-w2-fifo"])
    assert len(dec) == 1 and dec["candidates"][0] == ["threads-w2-fifo", "processes-w2-fifo"]
    assert dec["live_best"][0] == "processes-w2-fifo"
    assert dec["live_margin"][0] == pytest.approx(0.1)
    feats = pd.DataFrame({"f": [1.0]})
    # a classifier that ranks async-inline first, then threads: the pick is among the measured
    model = C.Majority().fit(np.zeros((3, 1)), np.array(["async-inline-w2-fifo"] * 2 +
                                                        ["threads-w2-fifo"]))
    model.predict_proba = lambda X: np.array([[0.7, 0.3]])  # type: ignore[method-assign]
    ev = L.evaluate(dec, feats, model, "threads-w2-fifo", ["f"])
    assert ev["pick"][0] == "threads-w2-fifo" and ev["share"][0] == pytest.approx(0.9)
    assert ev["sim_pick"][0] == "threads-w2-fifo"  # the simulator ranked it first
    assert ev["random_share"][0] == pytest.approx((0.9 + 1.0) / 2)
    s = L.summary(ev)
    assert s["classifier"]["accuracy"] == 0 and s["simulator"]["share"] == pytest.approx(0.9)


def test_gil_bound_heavy_model_goes_to_processes_tiny_model_stays_in_one_interpreter(tmp_path):
    p = gil_profile()
    cfgs = [c for c in default_configs(models=("heavy", "tiny")) if config_key(c) in KEYS]
    known = [WorkloadSpec(name="heavy", duration=5, warmup_s=1, seed=3, mix={"heavy": 1.0},
                          arrival=ArrivalSpec(kind="poisson", rate=35)),
             WorkloadSpec(name="tiny", duration=5, warmup_s=1, seed=3, mix={"tiny": 1.0},
                          arrival=ArrivalSpec(kind="poisson", rate=50))]
    drawn = draw_workloads(14, p, seed=1, draw=Draw(requests=40, duration_s=(0.5, 3.0),
                                                    load=(0.3, 2.0), single_model=0.0))
    with make_executor("local", jobs=1) as ex:
        samples = build_samples(known + drawn, cfgs, p, ex, tmp_path / "sweep",
                                ["heavy", "tiny"], progress=False)
    best = samples.set_index("workload")["best"]
    assert best["heavy"] == "processes-w2-fifo"  # threads queue behind one GIL
    assert best["tiny"] in ("async-inline-w2-fifo", "threads-w2-fifo")  # no hand-off wins
    assert samples.set_index("workload").loc["heavy", "margin"] > 0.5
    # resumable: the same call again simulates nothing and gives the same table
    with make_executor("local", jobs=1) as ex:
        again = build_samples(known + drawn, cfgs, p, ex, tmp_path / "sweep",
                              ["heavy", "tiny"], progress=False)
    pd.testing.assert_frame_equal(samples, again)
    a = S.analyse(samples, p, pd.DataFrame(), k=4, trees=20, repeats=1)
    assert set(a.cv["model"]) == {"tree", "forest", "boosting", "majority"}
    assert a.live_summary == {"decisions": 0}
    cv = a.cv.set_index("model")
    assert cv.loc[a.best_learner, "share"] >= cv.loc["majority", "share"]
    # the tree fitted on every workload sends a heavy GIL-bound load to processes
    data = C.Data.of(samples, a.features)
    tree = C.fit(data, "tree")
    heavy = samples.loc[samples["workload"] == "heavy", a.features].to_numpy(dtype=float)
    assert tree.predict(heavy)[0] == "processes-w2-fifo"
