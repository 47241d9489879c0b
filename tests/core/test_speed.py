"""Rescaling a profile to the machine's speed now (servelab.core.speed)."""

from __future__ import annotations

import dataclasses

import pytest

from servelab.core.profile import Profile, ProfileError, default_profile
from servelab.core.speed import PYTHON, Speed, at_speed, drift, reference, rescale


def with_reference(p: Profile, seconds: dict[str, float]) -> Profile:
    machine = dataclasses.replace(p.machine, extra={**p.machine.extra, "speed": {
        "ref": Speed(seconds).to_dict(), "probes": [], "drift": 0.0, "variant": "full"}})
    return dataclasses.replace(p, machine=machine)


def test_model_costs_follow_their_own_factor_and_python_costs_the_interpreters():
    p = default_profile()
    q = rescale(p, {"mobilenet_v2": 2.0, PYTHON: 3.0})
    for size in (1.0, 32.0):
        assert q.model("mobilenet_v2").mean_service(size) == pytest.approx(
            2 * p.model("mobilenet_v2").mean_service(size))
        assert q.model("distilbert").mean_service(size) == pytest.approx(
            p.model("distilbert").mean_service(size))  # no factor: unchanged
    for stack, h in p.http.items():
        assert q.http[stack].cost(1000) == pytest.approx(3 * h.cost(1000))
    assert q.event_loop.per_request_s == pytest.approx(3 * p.event_loop.per_request_s)
    assert q.ipc.cost(10_000) == pytest.approx(3 * p.ipc.cost(10_000))
    assert q.interference == p.interference and q.gil == p.gil  # ratios, not seconds
    assert rescale(p, {}) == p


def test_front_end_client_and_cold_costs_scale_too():
    from servelab.core.profile import ClientCost, CostCurve, FrontEndCost

    p = default_profile()
    fe = FrontEndCost(cpu={"mobilenet_v2": CostCurve(1e-4, 1e-7, ((10.0, 2e-4),))},
                      convoy={"mobilenet_v2": 1e-3}, latency_s=2e-4)
    mob = dataclasses.replace(p.model("mobilenet_v2"), cold=((0.01, 0.004),))
    p = dataclasses.replace(p, frontend={"threads": fe},
                            client=ClientCost(cpu={"mobilenet_v2": CostCurve(5e-5)}),
                            models={**p.models, "mobilenet_v2": mob})
    q = rescale(p, {"mobilenet_v2": 1.5, PYTHON: 2.0})
    assert q.frontend["threads"].cpu["mobilenet_v2"](10.0) == pytest.approx(4e-4)
    assert q.frontend["threads"].convoy == fe.convoy  # a delay, not CPU
    assert q.frontend["threads"].latency_s == fe.latency_s
    assert q.client.cpu["mobilenet_v2"](1.0) == pytest.approx(1e-4)
    assert q.model("mobilenet_v2").cold_extra(0.05) == pytest.approx(0.006)


def test_at_speed_compares_a_probe_with_the_profiles_reference():
    p = default_profile()
    assert reference(p) is None
    assert at_speed(p, Speed({"mobilenet_v2": 1.0})) == (p, {})  # nothing to compare with
    ref = {"mobilenet_v2": 0.005, PYTHON: 0.002}
    p = with_reference(p, ref)
    q, f = at_speed(p, Speed({"mobilenet_v2": 0.0075, PYTHON: 0.002, "other": 1.0}))
    assert f == pytest.approx({"mobilenet_v2": 1.5, PYTHON: 1.0})
    assert q.model("mobilenet_v2").mean_service(32) == pytest.approx(
        1.5 * p.model("mobilenet_v2").mean_service(32))
    with pytest.raises(ProfileError, match="probe"):  # 10x: a broken probe
        at_speed(p, Speed({"mobilenet_v2": 0.05}))


def test_median_drift_and_json():
    a = Speed({"m": 1.0, PYTHON: 2.0}, at="t0")
    b = Speed({"m": 1.5, PYTHON: 2.0}, at="t1")
    c = Speed({"m": 1.2})
    assert Speed.median([a, b, c]).seconds == {"m": 1.2, PYTHON: 2.0}
    assert drift([a, b, c]) == pytest.approx(0.5)
    assert drift([a]) == 0.0
    assert Speed.from_dict(a.to_dict()) == a
    with pytest.raises(ProfileError):
        Speed({"m": 0.0})
