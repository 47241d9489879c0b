"""Sweeps: the grid, resumability, executors, and the oracle table."""

from __future__ import annotations

import importlib.util

import pandas as pd
import pytest

from servelab.core.config import ServerConfig
from servelab.core.profile import default_profile
from servelab.core.workload import ArrivalSpec, WorkloadSpec
from servelab.sim.executors import EXECUTORS, LocalExecutor, make_executor
from servelab.sim.oracle import format_oracle, oracle_table
from servelab.sim.sweep import (
    canonical,
    expand_configs,
    make_points,
    parse_grid,
    run_sweep,
    simulate_point,
)

SMALL = {
    "fast": WorkloadSpec(
        name="fast", duration=5, arrival=ArrivalSpec(kind="poisson", rate=80),
        mix={"mobilenet_v2": 1.0}, seed=1,
    ),
    "mix": WorkloadSpec(
        name="mix", duration=5, arrival=ArrivalSpec(kind="poisson", rate=15),
        mix={"mobilenet_v2": 0.7, "distilbert": 0.3}, seed=2,
    ),
}


def _square(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x * x


def test_parse_grid_types_and_errors():
    grid = parse_grid(["concurrency=threads,processes", "workers=1,2", "batch-timeout-ms=0,2.5",
                       "models=mobilenet_v2+distilbert,lstm_forecaster"])
    assert grid == {
        "concurrency": ["threads", "processes"], "workers": [1, 2],
        "batch_timeout_ms": [0.0, 2.5],
        "models": [("mobilenet_v2", "distilbert"), ("lstm_forecaster",)],
    }
    with pytest.raises(ValueError, match="not a server config field"):
        parse_grid(["cores=2"])
    with pytest.raises(ValueError, match="not a valid int"):
        parse_grid(["workers=two"])
    with pytest.raises(ValueError, match="KEY=V1"):
        parse_grid(["workers"])


def test_expand_configs_drops_fields_that_cannot_matter():
    grid = parse_grid(["concurrency=threads,processes,async", "offload=inline,thread",
                       "model_lock=none,per-model"])
    configs = expand_configs(ServerConfig(), grid)
    # threads x 2 locks, processes x 1, async inline x 1, async thread offload x 2 locks (its
    # inference runs in threads of the server process, where the lock applies)
    assert len(configs) == 6
    assert canonical(ServerConfig(concurrency="processes", offload="inline")).offload == "thread"
    assert canonical(ServerConfig(max_batch=1, batch_timeout_ms=5)).batch_timeout_ms == 0
    with pytest.raises(ValueError, match="valid: threads, processes, async"):
        expand_configs(ServerConfig(), {"concurrency": ["fibers"]})


def test_local_executor_yields_every_item_and_exceptions():
    for jobs in (1, 2):
        with LocalExecutor(jobs=jobs) as ex:
            got = dict(ex.map_unordered(_square, [1, 2, 3, 4]))
        assert got[1] == 1 and got[2] == 4 and got[4] == 16
        assert isinstance(got[3], ValueError)


def test_executor_registry():
    assert set(EXECUTORS) == {"local", "ray"}
    with pytest.raises(ValueError, match="valid: local, ray"):
        make_executor("dask")


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="ray is installed")
def test_ray_executor_without_ray_says_how_to_install():
    with pytest.raises(RuntimeError, match=r"pip install 'servelab\[ray\]'"):
        make_executor("ray")


def test_sweep_runs_resumes_and_reports_failures(tmp_path):
    configs = expand_configs(ServerConfig(), parse_grid(["concurrency=threads,processes",
                                                         "workers=1,2"]))
    points = make_points(SMALL, configs, default_profile(), slo_ms=50.0)
    assert len(points) == 8 and len({p.id for p in points}) == 8
    with LocalExecutor(jobs=2) as ex:
        first = run_sweep(points, tmp_path, ex, progress=False)
    assert first.ran == 8 and first.skipped == 0 and not first.failed
    table = pd.read_parquet(tmp_path / "sweep.parquet")
    assert len(table) == 8 and set(table["workload"]) == {"fast", "mix"}
    assert table["little_rel_err"].max() < 1e-9
    assert {"goodput", "reward", "latency_p99_s", "mobilenet_v2.p99_s"} <= set(table.columns)
    # Resume: nothing to do; then lose one point and only that one re-runs.
    with LocalExecutor(jobs=1) as ex:
        again = run_sweep(points, tmp_path, ex, progress=False)
        assert again.ran == 0 and again.skipped == 8
        (tmp_path / "points" / f"{points[3].id}.json").unlink()
        third = run_sweep(points, tmp_path, ex, progress=False)
    assert third.ran == 1 and third.skipped == 7
    pd.testing.assert_frame_equal(  # the re-run point reproduces its row (timing aside)
        third.table.drop(columns="sim_cpu_s").sort_values("point_id").reset_index(drop=True),
        first.table.drop(columns="sim_cpu_s").sort_values("point_id").reset_index(drop=True),
    )
    # A failing point is reported; the others still finish.
    bad = make_points({"odd": WorkloadSpec(name="odd", mix={"resnet": 1.0})}, configs[:1],
                      default_profile())
    with LocalExecutor(jobs=1) as ex:
        out = run_sweep(points[:2] + bad, tmp_path / "b", ex, progress=False)
    assert out.ran == 2 and len(out.failed) == 1 and "no service model" in out.failed[0][1]


def test_run_point_is_deterministic_and_keeps_records_on_request():
    [p] = make_points({"fast": SMALL["fast"]}, [ServerConfig()], default_profile(), seed_offsets=[4],
                      save_records=True)
    a, b = simulate_point(p), simulate_point(p)
    ra, rb = (pd.Series(r["row"]).drop("sim_cpu_s") for r in (a, b))
    pd.testing.assert_series_equal(ra, rb)
    assert a["records"] is not None and len(a["records"]) == a["row"]["requests"]
    assert p.seed == SMALL["fast"].seed + 4


def _table() -> pd.DataFrame:
    rows = []
    for wl, values in {"w1": [5.0, 9.0, 7.0], "w2": [3.0, 1.0, 2.0]}.items():
        for i, (v, p99) in enumerate(zip(values, [0.5, 1.0, 0.0], strict=True)):
            for seed in (0, 1):
                rows.append({
                    "workload": wl, "scale": 1.0, "seed": seed, "config_id": f"c{i}",
                    "concurrency": "threads", "workers": i + 1, "goodput": v + seed * 0.1,
                    "throughput": v, "latency_p99_s": p99, "reward": v / (1 + p99),
                })
    return pd.DataFrame(rows)


def test_oracle_picks_the_best_configuration_per_workload():
    table = _table()
    good = oracle_table(table, "goodput")
    assert good.set_index("workload")["best_config"].to_dict() == {"w1": "c1", "w2": "c0"}
    w1 = good.set_index("workload").loc["w1"]
    assert w1["best_value"] == pytest.approx(9.05)  # mean over the two seeds
    assert w1["runner_up"] == "c2" and w1["margin"] == pytest.approx(9.05 / 7.05 - 1)
    assert w1["configs"] == 3 and w1["workers"] == 2
    reward = oracle_table(table, "reward").set_index("workload")
    # c1 has the most throughput but a 1 s p99: reward 4.5 < c2's 7.
    assert reward.loc["w1", "best_config"] == "c2"
    assert "w1" in format_oracle(good)
    with pytest.raises(ValueError, match="valid: goodput, reward"):
        oracle_table(table, "latency")
    with pytest.raises(ValueError, match="--slo-ms"):
        oracle_table(table.assign(goodput=float("nan")), "goodput")


class _FakeRay:
    """Just enough of Ray's API to drive RayExecutor in-process."""

    def __init__(self):
        self.initialized = False
        self.init_args = None

    def is_initialized(self):
        return self.initialized

    def init(self, **kw):
        self.initialized, self.init_args = True, kw

    def shutdown(self):
        self.initialized = False

    def cluster_resources(self):
        return {"CPU": 2.0}

    def remote(self, fn):
        class Ref:
            def __init__(self, item):
                self.item = item

        class Remote:
            @staticmethod
            def remote(item):
                return Ref(item)

        self._fn = fn
        return Remote

    def wait(self, refs, num_returns=1):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        return self._fn(ref.item)


def test_ray_executor_logic_with_a_stub(monkeypatch):
    import sys

    fake = _FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    with make_executor("ray", address="auto") as ex:
        assert fake.init_args["address"] == "auto"
        got = dict(ex.map_unordered(_square, list(range(7))))
    assert not fake.initialized  # the executor shut down what it started
    assert {k: v for k, v in got.items() if k != 3} == {k: k * k for k in range(7) if k != 3}
    assert isinstance(got[3], ValueError)
