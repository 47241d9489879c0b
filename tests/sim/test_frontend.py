"""The simulated client and front end around the scheduler, on deterministic cases: the path's
timing, the event loop serializing front-end passes, the convoy delay, and Little's law over
the whole path."""

from __future__ import annotations

from dataclasses import replace

import pytest

from servelab.core.config import ServerConfig
from servelab.core.profile import (
    ClientCost,
    CostCurve,
    FrontEndCost,
    MachineInfo,
    ModelProfile,
    Profile,
)
from servelab.core.workload import ArrivalSpec, SizeDist, WorkloadSpec
from servelab.sim.run import simulate


def profile(convoy: float = 0.0, client: float = 0.2, serial: bool = False) -> Profile:
    mp = ModelProfile(forward=CostCurve(fixed_s=1.0), dist="deterministic")
    fe = FrontEndCost(cpu={"m": CostCurve(fixed_s=0.1)}, convoy={"m": convoy}, in_share=0.5,
                      serial=serial)
    return Profile(
        machine=MachineInfo(cores=2), models={"m": mp},
        frontend={"threads": fe, "processes": fe, "async-thread": replace(fe, serial=True)},
        client=ClientCost(cpu={"m": CostCurve(fixed_s=client)}),
    )


def trace(*times: float) -> WorkloadSpec:
    return WorkloadSpec(name="t", duration=max(times) + 1.0, seed=0, mix={"m": 1.0},
                        arrival=ArrivalSpec(kind="trace", times=tuple(times)),
                        sizes={"m": SizeDist()})


def cfg(**kw) -> ServerConfig:
    return ServerConfig(models=("m",), **kw)


def latencies(res) -> list[float]:
    r = res.records
    return (r["end"] - r["intended_arrival"]).round(9).tolist()


def test_one_request_pays_client_front_end_service_front_end_client():
    res = simulate(cfg(concurrency="processes", workers=1), trace(0.0), profile())
    # send 0.1, parse 0.05, service 1.0, encode 0.05, receive 0.1
    assert latencies(res) == [pytest.approx(1.3)]
    assert res.records["enqueue"].iloc[0] == pytest.approx(0.15)
    assert res.summary["modelled"]["front_end"] == "measured live"


def test_the_client_can_be_taken_off_the_cores():
    prof = profile()
    off = replace(prof, client=replace(prof.client, colocated=False))
    assert latencies(simulate(cfg(concurrency="processes", workers=1), trace(0.0), off)) == [
        pytest.approx(1.1)]


def test_an_event_loop_parses_one_request_at_a_time():
    res = simulate(cfg(concurrency="async", offload="thread", workers=2), trace(0.0, 0.0),
                   profile(client=0.0))
    enq = sorted(res.records["enqueue"].round(9).tolist())
    assert enq == [pytest.approx(0.05), pytest.approx(0.1)]


def test_waitress_threads_parse_side_by_side():
    res = simulate(cfg(concurrency="processes", workers=2), trace(0.0, 0.0), profile(client=0.0))
    # two front-end passes in the pool's main interpreter share its GIL (fluid: each at 1/2)
    enq = sorted(res.records["enqueue"].round(9).tolist())
    assert enq == [pytest.approx(0.1), pytest.approx(0.1)]


def test_convoy_delays_a_request_parsed_while_inference_runs_in_the_same_interpreter():
    prof = profile(convoy=0.5)
    threads = simulate(cfg(concurrency="threads", workers=2), trace(0.0, 0.2), prof)
    assert sorted(threads.records["enqueue"].round(9).tolist()) == [
        pytest.approx(0.15), pytest.approx(0.85)]
    procs = simulate(cfg(concurrency="processes", workers=2), trace(0.0, 0.2), prof)
    assert sorted(procs.records["enqueue"].round(9).tolist()) == [
        pytest.approx(0.15), pytest.approx(0.35)]


def test_little_law_holds_over_the_whole_path():
    spec = WorkloadSpec(name="p", duration=200.0, seed=1, mix={"m": 1.0},
                        arrival=ArrivalSpec(kind="poisson", rate=1.2), sizes={"m": SizeDist()})
    res = simulate(cfg(concurrency="threads", workers=2), spec, profile(convoy=0.05))
    assert res.summary["little"]["rel_err"] < 0.01


def test_hand_off_latency_is_time_without_cpu_half_each_way():
    prof = profile()
    prof = replace(prof, frontend={k: replace(v, latency_s=0.2) for k, v in prof.frontend.items()})
    res = simulate(cfg(concurrency="processes", workers=1), trace(0.0), prof)
    assert latencies(res) == [pytest.approx(1.5)]
    assert res.records["enqueue"].iloc[0] == pytest.approx(0.25)
