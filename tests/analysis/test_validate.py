"""``servelab validate``: the metric code on synthetic tables, the capacity ladder, error
attribution on a profile whose answer is known, resumability (with the simulator standing in
for the live servers), and one short end-to-end run on tiny live models."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from servelab.analysis.validate import attribution as A
from servelab.analysis.validate import metrics as M
from servelab.analysis.validate.backend import SimBackend
from servelab.analysis.validate.grid import (
    SETUPS,
    Cell,
    Grid,
    Plan,
    at_rate,
    ladder_cells,
    quick_grid,
)
from servelab.analysis.validate.validation import validate
from servelab.core.config import ServerConfig
from servelab.core.profile import default_profile, queueing_profile
from servelab.loadgen.ladder import Step, climb
from servelab.workloads import load_workload

# -- metrics ------------------------------------------------------------------------------------


def test_spearman_and_top_pick_share():
    assert M.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert M.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert M.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert math.isnan(M.spearman([1, 2], [1, 2]))  # too few
    assert math.isnan(M.spearman([1, 2, 3], [5, 5, 5]))  # the simulator cannot tell them apart
    assert math.isnan(M.spearman([1, 2, float("nan")], [1, 2, 3]))  # NaN pairs dropped
    # The simulator picks the second configuration, live worth 8 of the best 10.
    assert M.top_pick_share([10, 8, 5], [1, 3, 2]) == pytest.approx(0.8)
    assert M.top_pick_share([10, 8, 5], [3, 1, 2]) == pytest.approx(1.0)


def test_saturation_rule_and_agreement():
    assert M.is_saturated(80.0, 100.0)  # below 90% of the offered rate
    assert not M.is_saturated(95.0, 100.0)
    assert M.is_saturated(99.0, 100.0, failed=0.02)  # more than 1% refused or timed out
    df = pd.DataFrame({
        "workload": ["w"] * 4, "cell": ["a", "b", "a", "b"], "load": [0.8, 0.8, 1.3, 1.3],
        "own_load": [0.6, 1.1, 1.0, 1.8], "repeat": 0,
        "live_saturated": [False, True, False, True], "sim_saturated": [False, False, False, True],
    })
    every = M.saturation_agreement(df)
    assert every["share"] == pytest.approx(0.75) and every["n"] == 4
    assert every["disagree"] == ["w b @0.8 (live sat, sim ok)"]
    above = M.saturation_agreement(df, above=True)  # level > 1, or own load > 1
    assert above["n"] == 3 and above["share"] == pytest.approx(2 / 3)


def _table(rewards_live, rewards_sim, loads, repeats=()):
    rows = []
    for load, live, sim in zip(loads, rewards_live, rewards_sim, strict=True):
        for i, (lv, sv) in enumerate(zip(live, sim, strict=True)):
            rows.append({"workload": "w", "cell": f"c{i}", "setup": "threads", "load": load,
                         "repeat": 0, "own_load": load, "live_reward": lv, "sim_reward": sv})
    for cell, load, value in repeats:
        rows.append({"workload": "w", "cell": cell, "setup": "threads", "load": load,
                     "repeat": 1, "own_load": load, "live_reward": value, "sim_reward": 0.0})
    return pd.DataFrame(rows)


def test_noise_filter_counts_only_levels_where_live_rewards_differ():
    # At 50% the live rewards differ by 2% — inside the 10% run-to-run noise of the repeated
    # point — so that level's (reversed!) ranking does not count; at 80% they differ by 50%.
    df = _table([[50.0, 50.5, 51.0], [40.0, 60.0, 50.0]],
                [[3.0, 2.0, 1.0], [1.0, 3.0, 2.0]], [0.5, 0.8],
                repeats=[("c0", 0.8, 44.0)])
    nz = M.noise(df)
    assert nz["w"]["n"] == 1 and nz["w"]["reward"] == pytest.approx(4.0 / 42.0)
    fig = M.workload_figures(df, nz)["w"]
    lv = {x["load"]: x for x in fig["levels"]}
    assert not lv[0.5]["counted"] and "within noise" in lv[0.5]["why"]
    assert lv[0.5]["spearman"] == pytest.approx(-1.0)
    assert lv[0.8]["counted"] and lv[0.8]["spearman"] == pytest.approx(1.0)
    assert fig["spearman"] == pytest.approx(1.0) and fig["spearman_levels"] == 1
    # Top pick: the worst level counts (at 50% the sim picks c0, live 50 of the best 51).
    assert fig["top_pick"] == pytest.approx(50.0 / 51.0)
    # Without repeats the noise is unknown: every level counts.
    fig = M.workload_figures(df[df["repeat"] == 0])["w"]
    assert fig["spearman_levels"] == 2 and fig["spearman"] == pytest.approx(0.0)


def test_each_level_is_judged_against_the_noise_measured_at_it():
    # Repeats at both levels: 50% repeats to 1% (its 4% spread counts), 80% to 60% (its 50%
    # spread does not) — one workload-wide figure (30%) would have got both wrong.
    df = _table([[50.0, 51.0, 52.0], [40.0, 60.0, 50.0]],
                [[1.0, 2.0, 3.0], [1.0, 3.0, 2.0]], [0.5, 0.8],
                repeats=[("c0", 0.5, 50.5), ("c0", 0.8, 100.0)])
    nz = M.noise(df)
    assert nz["w"]["reward_by_load"] == pytest.approx({0.5: 0.5 / 50.25, 0.8: 60.0 / 70.0})
    lv = {x["load"]: x for x in M.workload_figures(df, nz)["w"]["levels"]}
    assert lv[0.5]["counted"] and lv[0.5]["spearman"] == pytest.approx(1.0)
    assert not lv[0.8]["counted"] and "within noise" in lv[0.8]["why"]


def test_point_targets_and_target_lines():
    df = pd.DataFrame({
        "repeat": 0, "own_load": [0.5, 0.5, 0.8, 0.95],
        "live_p50_s": [0.010] * 4, "sim_p50_s": [0.011, 0.008, 0.010, 0.001],
        "live_p99_s": [0.050] * 4, "sim_p99_s": [0.060, 0.040, 0.070, 0.001],
        "live_throughput": [10.0] * 4, "sim_throughput": [10.0] * 4,
    })
    t = M.point_targets(df)
    assert t["p50_s"]["n"] == 3  # the 95% point is not a target point
    assert t["p50_s"]["share"] == pytest.approx(2 / 3)  # -20% misses the 15% band
    assert t["p99_s"]["share"] == pytest.approx(2 / 3)  # +40% misses the 25% band
    assert t["throughput"]["share"] == pytest.approx(1.0)
    lines = M.targets(t, {"w": {"spearman": 0.9, "top_pick": 0.9}}, {"share": math.nan, "n": 0})
    met = {x.name: x.met for x in lines}
    assert met["p50 within 15%"] is False and met["throughput within 15%"] is True
    assert met["w: reward Spearman"] is True and met["w: top pick / live best"] is False
    assert met["saturation agreement above capacity"] is None


# -- the capacity ladder -----------------------------------------------------------------------


def _server(capacity, overload_loss=0.0):
    """A synthetic server: completes min(rate, capacity), less under a heavy overload."""
    calls = []

    def measure(rate):
        calls.append(rate)
        done = min(rate, capacity) * (1 - overload_loss if rate > 2 * capacity else 1)
        return Step(rate=rate, offered=rate, throughput=done)

    return measure, calls


def test_ladder_climbs_to_the_capacity_from_below_and_from_above():
    measure, calls = _server(100.0)
    lad = climb(measure, 40.0, up=1.3)
    assert lad.bounded and lad.capacity == pytest.approx(100.0)
    assert calls[-1] > 100 / 0.9 and calls[-2] <= 100  # stopped right after saturating
    measure, calls = _server(100.0)
    lad = climb(measure, 125.0)  # a first guess 25% high: two steps
    assert lad.capacity == pytest.approx(100.0) and len(calls) == 2
    assert "unsaturated at 85.0" in lad.note
    # Far above, where a heavy overload completes less than the capacity: bisect back.
    measure, calls = _server(100.0, overload_loss=0.4)
    lad = climb(measure, 400.0, max_steps=6)
    assert lad.capacity == pytest.approx(100.0) and len(calls) <= 4
    measure, _ = _server(1e9)
    lad = climb(measure, 10.0, max_steps=3)
    assert not lad.bounded and lad.note.startswith("not saturated")


# -- the grid ----------------------------------------------------------------------------------


def test_quick_grid_covers_every_setup_and_fits_its_budget():
    g = quick_grid()
    assert {c.setup for c in g.cells} == set(SETUPS)
    assert {c.scheduler for c in g.cells} == {"fifo", "sjf"}
    assert {c.workers for c in g.cells} == {1, 2, 4}
    assert Plan.of(g).seconds <= 15 * 60
    assert Grid.from_dict(json.loads(json.dumps(g.to_dict()))) == g
    assert Cell.parse("async-inline-w4-mlfq") == Cell("async-inline", 4, "mlfq")
    # Capacity is measured once per setup and pool size, on the FIFO server.
    lc = ladder_cells([Cell("threads", 2, "sjf"), Cell("threads", 2, "fifo")])
    assert lc == {"threads-w2": Cell("threads", 2, "fifo")}
    spec = at_rate(load_workload("bursty"), 40.0, 10.0, 2.0, seed=3, poisson=True)
    assert spec.arrival.kind == "poisson" and spec.mean_rate() == pytest.approx(40.0)
    assert spec.total_duration == 12.0 and spec.warmup_s == 2.0


# -- error attribution -------------------------------------------------------------------------


def test_match_factor_on_known_curves():
    f, verdict, _, _ = A.match_factor(lambda x: 3.0 * x, 6.0)
    assert verdict == "match" and f == pytest.approx(2.0, rel=0.01)
    f, verdict, _, _ = A.match_factor(lambda x: 3.0 / x, 6.0)  # decreasing
    assert verdict == "match" and f == pytest.approx(0.5, rel=0.01)
    assert A.match_factor(lambda x: 3.0 * x, 100.0)[1] == "above"
    assert A.match_factor(lambda x: 3.0 * x, 0.1)[1] == "below"
    assert A.match_factor(lambda x: 3.0, 6.0)[1] == "no effect"


def test_parameter_families_scale_what_they_name():
    p = default_profile()
    m = p.model("distilbert")
    assert A.scale_service(p, 2.0).model("distilbert").mean_service(128) == pytest.approx(
        2 * m.mean_service(128))
    fe = A.FAMILIES[1][1](p, 3.0)
    assert fe.http["threads"].fixed_s == pytest.approx(3 * p.http["threads"].fixed_s)
    assert fe.http["threads"].gil_share == p.http["threads"].gil_share  # a share, not a time
    assert fe.event_loop.thread_handoff_s == pytest.approx(3 * p.event_loop.thread_handoff_s)
    assert A.scale_gil(p, 10.0).model("mobilenet_v2").gil_share == 1.0  # capped
    it = A.scale_interference(p, 2.0).interference.threads
    assert it[1] == pytest.approx(1 + 2 * (p.interference.threads[1] - 1))


def test_time_fields_are_found_by_name_in_any_dataclass():
    from dataclasses import dataclass, field

    @dataclass(frozen=True)
    class Stage:
        fixed_s: float = 1.0
        share: float = 0.5  # a fraction: left alone
        convoy: dict = field(default_factory=lambda: {"m": 2.0})  # seconds per model
        label: str = "x"

    @dataclass(frozen=True)
    class Outer:
        stages: dict = field(default_factory=lambda: {"a": Stage()})
        wait_s: float = 3.0

    out = A.scale_times(Outer(), 2.0)
    assert out.wait_s == 6.0 and out.stages["a"].fixed_s == 2.0
    assert out.stages["a"].share == 0.5 and out.stages["a"].convoy == {"m": 4.0}


def test_attribution_finds_the_service_factor_of_a_synthetic_live_system():
    # "Live" is the simulator with every service time doubled: attribution must say service x2.
    p = default_profile()
    cfg = ServerConfig(concurrency="threads", workers=2, model_lock="none",
                       models=("mobilenet_v2",))
    spec = at_rate(load_workload("fast-only"), 40.0, 8.0, 1.0, seed=5)
    seeds = [5, 6]
    live = A.sim_p50(cfg, spec, A.scale_service(p, 2.0), seeds)
    base = A.sim_p50(cfg, spec, p, seeds)
    attrs = {a.family: a for a in A.attribute(cfg, spec, p, live, seeds)}
    assert attrs["service"].verdict == "match"
    assert attrs["service"].factor == pytest.approx(2.0, rel=0.08)
    assert attrs["ipc"].verdict == "no effect"  # threads hand nothing to a process
    assert attrs["client"].verdict == "absent"  # this profile has no client-cost field
    line = A.explain((base - live) / live, list(attrs.values()))
    assert line.startswith("p50 error -") and "service x2" in line
    # A pure queue has no front end at all.
    q = queueing_profile({"mobilenet_v2": 0.01}, cores=2)
    assert A.attribute(cfg, spec, q, live, [5], families=A.FAMILIES[1:2])[0].verdict == "absent"


# -- resumability, with the simulator as the live system --------------------------------------


class CountingBackend(SimBackend):
    runs: list

    def session(self, config, log=None):
        backend = super().session(config, log)
        counter = self.runs

        class Wrap:
            def __enter__(self):
                self.s = backend.__enter__()
                return self

            def __exit__(self, *exc):
                return backend.__exit__(*exc)

            def run(self, spec):
                counter.append((config.config_id, spec.mean_rate()))
                return self.s.run(spec)

        return Wrap()


def _small_grid(**kw):
    base = dict(cells=(Cell("threads", 2, "fifo"), Cell("processes", 2, "fifo"),
                       Cell("threads", 2, "sjf")),
                workloads=("fast-only",), loads=(0.5, 0.8), duration=3.0, warmup=0.5,
                ladder_step_s=2.0, ladder_warmup_s=0.5, ladder_steps=3, server_warmup_s=0.5,
                repeats=2, repeat_cells=1, repeat_loads="top", sim_seeds=2)
    base.update(kw)
    return Grid(**base)


def test_resume_skips_measured_points_and_resimulates_for_a_new_profile(tmp_path):
    p = default_profile()
    live = A.scale_service(p, 1.5)
    backend = CountingBackend(live)
    object.__setattr__(backend, "runs", [])
    grid = _small_grid()
    res = validate(grid, p, tmp_path, backend=backend, attribute=1, say=lambda s: None)
    pts = pd.read_parquet(tmp_path / "points.parquet")
    assert len(pts) == 3 * 2 + 1  # 3 configurations x 2 loads, plus one repeat
    assert set(pts["split"]) == {"validation"}
    assert (pts["rate"].round(6).groupby(pts["load"]).nunique() == 1).all()  # a common rate
    assert {"scatter", "ranks", "points"} <= set(res.summary["files"])
    assert (tmp_path / "scatter.png").stat().st_size > 0
    assert res.attribution and "service" in res.attribution[0]["explain"]
    first = len(backend.runs)

    backend.runs.clear()  # everything is there: nothing runs again
    validate(grid, p, tmp_path, backend=backend, attribute=0, say=lambda s: None)
    assert backend.runs == []

    kept = pts[pts["key"] != pts["key"].iloc[0]]  # lose one point: only it runs again
    kept.to_parquet(tmp_path / "points.parquet", index=False)
    validate(grid, p, tmp_path, backend=backend, attribute=0, say=lambda s: None)
    assert len(backend.runs) == 2 < first  # the server's warm-up run and the point
    again = pd.read_parquet(tmp_path / "points.parquet")
    assert sorted(again["key"]) == sorted(pts["key"])

    backend.runs.clear()  # a new profile: the same live points, simulated again
    slower = A.scale_service(p, 1.5)
    res = validate(grid, slower, tmp_path, backend=backend, attribute=0, say=lambda s: None)
    assert backend.runs == []
    assert set(res.points["profile"]) == {slower.digest}
    assert res.points["err_p50_s"].abs().max() < 0.5  # now it is the live system's profile


def test_budget_stops_resumably(tmp_path):
    p = default_profile()
    grid = _small_grid(repeats=1)
    res = validate(grid, p, tmp_path, backend=SimBackend(p), attribute=0, say=lambda s: None,
                   budget_s=1e-3)
    assert res.points.empty and "budget" in res.summary["stopped"]
    res = validate(grid, p, tmp_path, backend=SimBackend(p), attribute=0, say=lambda s: None)
    assert res.summary["complete"] and len(res.points) == 6
    # the simulator against itself: the same seed live, a mean of 2 seeds simulated
    assert np.nanmedian(res.points["err_throughput"].abs()) < 0.1


# -- the command, end to end on tiny live models -----------------------------------------------


def test_help_states_the_split_and_the_targets(capsys):
    from servelab import cli

    with pytest.raises(SystemExit):
        cli.main(["validate", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "held-out validation point" in out and "Spearman" in out and "--resume" in out


def summary_lines(text):
    return [x for x in text.splitlines() if x.startswith("fast-only: reward Spearman")]


def test_validate_command_end_to_end_on_tiny_live_models(tmp_path, capsys):
    # One configuration, so one server: the capacity phase's server stays up for the points.
    from servelab import cli

    out = tmp_path / "v"
    argv = ["validate", "--quick", "--variant", "tiny", "--setups", "threads",
            "--workers", "2", "--workloads", "fast-only", "--loads", "0.5",
            "--duration", "1.5", "--warmup", "0.5", "--ladder-step", "1", "--ladder-warmup",
            "0.3", "--ladder-steps", "2", "--server-warmup", "0.3", "--repeats", "2",
            "--sim-seeds", "2", "--attribute", "1", "--out", str(out)]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "fast-only" in text and "reproduce: servelab validate --quick" in text
    assert "held-out validation point" in text
    for name in ("points.parquet", "summary.json", "scatter.png", "ranks.png", "grid.json",
                 "capacities.json"):
        assert (out / name).exists(), name
    pts = pd.read_parquet(out / "points.parquet")
    assert len(pts) == 2 and (pts["live_throughput"] > 0).all()  # a point and its repeat
    assert summary_lines(text)
    assert replace(quick_grid(), variant="tiny").variant == "tiny"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["c_ref"]["fast-only"] > 0
    assert summary["command"].startswith("servelab validate --quick")
    assert {t["name"] for t in summary["targets"]} >= {"p50 within 15%",
                                                       "fast-only: reward Spearman"}


def test_points_are_simulated_at_the_machines_speed_when_they_ran(tmp_path):
    """The "live" system runs 1.5x slower than the profile was calibrated at, and its speed
    probe says so: rescaled, the simulator predicts it; not rescaled, it is 1.5x off."""
    import dataclasses

    from servelab.core.speed import Speed

    ref = {"mobilenet_v2": 0.004, "python": 0.002}
    p = default_profile()
    p = dataclasses.replace(p, machine=dataclasses.replace(p.machine, extra={"speed": {
        "ref": Speed(ref).to_dict(), "probes": [], "drift": 0.0, "variant": "full"}}))
    live = SimBackend(A.scale_service(p, 1.5), probe={"mobilenet_v2": 0.006, "python": 0.002})
    grid = _small_grid(repeats=1, cells=(Cell("threads", 2, "fifo"),), rescale=True)
    res = validate(grid, p, tmp_path / "on", backend=live, attribute=0, say=lambda s: None)
    assert res.points["speed_mobilenet_v2"].tolist() == pytest.approx([1.5, 1.5])
    assert res.points["probe_mobilenet_v2_s"].tolist() == pytest.approx([0.006, 0.006])
    assert res.points["err_p50_s"].abs().max() < 0.15
    off = validate(dataclasses.replace(grid, rescale=False), p, tmp_path / "off", backend=live,
                   attribute=0, say=lambda s: None)
    assert "speed_mobilenet_v2" not in off.points
    assert off.points["err_p50_s"].median() < -0.25  # the calibrated speed: too fast
    assert not off.summary["speed"]["rescaled"]
    assert not validate(_small_grid(repeats=1), p, tmp_path / "default", backend=live,
                        attribute=0, say=lambda s: None).summary["speed"]["rescaled"]


def test_resimulate_simulates_every_stored_point_again(tmp_path):
    p = default_profile()
    grid = _small_grid(repeats=1, cells=(Cell("threads", 2, "fifo"),))
    backend = CountingBackend(p)
    object.__setattr__(backend, "runs", [])
    validate(grid, p, tmp_path, backend=backend, attribute=0, say=lambda s: None)
    pts = pd.read_parquet(tmp_path / "points.parquet")
    pts["sim_p50_s"] = 1e3  # as if an older simulator had simulated them
    pts.to_parquet(tmp_path / "points.parquet", index=False)
    backend.runs.clear()
    kept = validate(grid, p, tmp_path, backend=backend, attribute=0, say=lambda s: None)
    assert (kept.points["sim_p50_s"] == 1e3).all()  # same profile: left alone
    again = validate(grid, p, tmp_path, backend=backend, attribute=0, say=lambda s: None,
                     resimulate=True)
    assert backend.runs == []  # no live run
    assert (again.points["sim_p50_s"] < 1.0).all()


def test_a_run_stored_in_the_old_ms_format_resumes_in_seconds(tmp_path):
    from servelab.analysis.validate import report as R
    from servelab.analysis.validate.store import Store

    p = default_profile()
    grid = _small_grid(repeats=1, cells=(Cell("threads", 2, "fifo"),))
    backend = CountingBackend(p)
    object.__setattr__(backend, "runs", [])
    new = validate(grid, p, tmp_path, backend=backend, attribute=0, say=lambda s: None)
    old = new.points.rename(columns={f"{a}_{m}_s": f"{a}_{m}_ms" for a in ("live", "sim", "err")
                                     for m in ("p50", "p99")})
    for c in ("live_p50_ms", "sim_p50_ms", "live_p99_ms", "sim_p99_ms"):
        old[c] = old[c] * 1e3  # version 1: milliseconds
    old.to_parquet(tmp_path / "points.parquet", index=False)
    pd.testing.assert_frame_equal(Store(tmp_path).points(), new.points, check_like=True)
    backend.runs.clear()
    again = validate(grid, p, tmp_path, backend=backend, attribute=0, say=lambda s: None)
    assert backend.runs == [] and R.format_points(again.points) == R.format_points(new.points)
    assert "live_p50_s" in pd.read_parquet(tmp_path / "points.parquet")  # saved as version 2
    assert json.loads((tmp_path / "summary.json").read_text())["version"] == 2
