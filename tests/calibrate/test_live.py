"""The live stages' fits on synthetic measurements whose answers are known."""

from __future__ import annotations

import itertools

import pytest

from servelab.calibrate.fit import fit_gil
from servelab.calibrate.live import client_background, frontend_costs, gil_from_corun
from servelab.core.gil import pair_rates


def test_fit_gil_recovers_shares_and_overhead_from_pair_rates():
    truth = {"a": 0.95, "b": 0.3, "c": 0.7}
    obs = [(x, y, *pair_rates(truth[x], truth[y], 0.2)) for x, y in
           itertools.combinations_with_replacement(truth, 2)]
    fit = fit_gil(obs, cores=2)
    assert fit.rmse < 1e-3  # the fitted model reproduces every pair's rates
    # (shares and overhead trade off against each other; their order is identified)
    assert fit.shares["b"] < fit.shares["c"] < fit.shares["a"]


def test_corun_pairs_become_the_table_in_both_directions():
    results = [{"pairs": [
        {"a": "m", "b": "m", "rate_a": 0.5, "rate_b": 0.6},
        {"a": "m", "b": "frontend", "rate_a": 0.2, "rate_b": 0.9},
        {"a": "frontend", "b": "frontend", "rate_a": 0.4, "rate_b": 0.4},
    ]}]
    gil, shares = gil_from_corun(results, cores=2)
    assert gil.pairs["m"]["m"] == pytest.approx(0.55)
    assert gil.pairs["m"]["frontend"] == 0.2 and gil.pairs["frontend"]["m"] == 0.9
    assert set(shares) == {"m"}  # the fluid fit sees only model pairs


def test_client_background_separates_time_from_requests():
    runs = [{"seconds": 2.0, "requests": n, "client_s": (0.02 * 2.0 + 0.0005 * n) / n}
            for n in (5, 40, 80)]
    bg, per = client_background(runs)
    assert bg == pytest.approx(0.02) and per == pytest.approx(0.0005)


def _run(model, size, fe, n=50, client=0.001):
    return {"model": model, "size": size, "requests": n, "seconds": 2.0, "frontend_s": fe,
            "inference_s": 0.0, "client_s": client, "fixed_size": True}


def test_frontend_costs_curves_convoy_and_inline():
    results = [{"setup": "threads", "probe_idle_s": 0.001, "inference_threads": 2,
                "probe_delta_s": {"m": 0.004, "lstm": 0.0},
                "runs": [_run("m", 32, 0.002), _run("lstm", 96, 0.002), _run("lstm", 720, 0.005)]},
               {"setup": "async-thread", "probe_idle_s": 0.001, "probe_delta_s": {"m": 0.0},
                "runs": [_run("m", 32, 0.003)]}]
    from servelab.core.profile import GilCost

    gil = GilCost(pairs={"frontend": {"m": 0.5}})
    fe, client = frontend_costs(results, gil, notes=[])
    assert fe["threads"].cpu["m"](32) == pytest.approx(0.002)
    assert fe["threads"].cpu["lstm"](720) == pytest.approx(0.005)
    assert fe["threads"].cpu["lstm"](408) == pytest.approx(0.0035)
    # measured 4 ms; the probe's own 2 ms of front-end work stretched x2 explains 2 of them
    assert fe["threads"].convoy["m"] == pytest.approx(0.002)
    assert fe["async-thread"].serial and fe["async-inline"].serial
    assert fe["async-inline"].convoy == {}
    assert client.colocated and client.cpu["m"](32) == pytest.approx(0.001, rel=0.05)


def test_live_benches_run_end_to_end_on_a_tiny_model():
    from servelab.calibrate.live import frontend_costs, gil_from_corun
    from servelab.calibrate.worker import measure

    corun = measure({"bench": "corun", "params": {
        "kinds": ["lstm_forecaster", "frontend"], "variant": "tiny", "seconds": 0.2,
        "long_seconds": 0.2}, "warmups": 1})
    assert {(p["a"], p["b"]) for p in corun["pairs"]} == {
        ("lstm_forecaster", "lstm_forecaster"), ("lstm_forecaster", "frontend"),
        ("frontend", "frontend")}
    assert all(0 < p["rate_a"] <= 2 for p in corun["pairs"])
    fe = measure({"bench": "frontend", "params": {
        "setup": "threads", "models": ["lstm_forecaster"], "variant": "tiny", "seconds": 0.5,
        "probe_seconds": 0.3}, "warmups": 1})
    assert fe["inference_threads"] == 2
    assert {r["size"] for r in fe["runs"]} == {96.0, 720.0}
    assert all(r["requests"] > 0 and 0 < r["frontend_s"] < 0.05 for r in fe["runs"])
    gil, _ = gil_from_corun([corun], cores=2)
    costs, client = frontend_costs([fe], gil, notes=[])
    assert costs["threads"].cpu["lstm_forecaster"](400) > 0
    assert client.cpu["lstm_forecaster"](96) >= 0


def test_hand_off_latency_is_what_light_runs_spend_without_cpu():
    from servelab.calibrate.live import handoff_latency

    runs = [dict(_run("mobilenet_v2", 32, 0.002), inference_s=0.004, latency_p50_s=0.010),
            dict(_run("lstm_forecaster", 96, 0.002), inference_s=0.002, latency_p50_s=0.008),
            dict(_run("lstm_forecaster", 720, 0.004), inference_s=0.010, latency_p50_s=0.5)]
    # 10 - 1 - 2 - 4 = 3 ms and 8 - 1 - 2 - 2 = 3 ms; the long lookback is not a light run
    assert handoff_latency(runs) == pytest.approx(0.003)
    # a disturbed light run (its median 12 ms late) does not move it: the least is kept
    runs[0]["latency_p50_s"] = 0.022
    assert handoff_latency(runs) == pytest.approx(0.003)


def test_cold_curves_are_extra_cpu_over_back_to_back_and_never_fall():
    from servelab.calibrate.live import cold_curves

    res = [{"models": {"m": {"gaps_s": [0.0, 0.001, 0.01, 0.1],
                             "cpu_s": [0.005, 0.0049, 0.009, 0.0085]}}}]
    got = cold_curves(res)["m"]
    assert [g for g, _ in got] == [0.0, 0.001, 0.01, 0.1]
    assert [x for _, x in got] == pytest.approx([0.0, 0.0, 0.004, 0.004])


def test_inline_inference_is_the_loops_cpu_less_async_threads_front_end():
    from servelab.core.profile import CostCurve, GilCost, ModelProfile

    thread = {"setup": "async-thread", "probe_idle_s": 0.001, "probe_delta_s": {},
              "runs": [dict(_run("m", 32, 0.002), inference_s=0.004)]}
    # the loop's thread spends 8 ms per request: 2 ms of front end, 6 ms of inference
    inline = {"setup": "async-inline", "probe_idle_s": 0.0, "probe_delta_s": {},
              "runs": [_run("m", 32, 0.008)]}
    models = {"m": ModelProfile(forward=CostCurve(fixed_s=0.004))}
    fe, _ = frontend_costs([thread, inline], GilCost(), notes=[], models=models)
    assert fe["async-inline"].cpu["m"](32) == pytest.approx(0.002)
    assert fe["async-thread"].service_scale["m"] == pytest.approx(1.0)
    assert fe["async-inline"].service_scale["m"] == pytest.approx(1.5)
    # not measured: inline takes async-thread's
    fe, _ = frontend_costs([thread], GilCost(), notes=[], models=models)
    assert fe["async-inline"].service_scale["m"] == pytest.approx(1.0)
