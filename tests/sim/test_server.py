"""The simulated server's mechanisms, each on a case small enough to know the answer exactly,
plus the invariants every run must keep (schema, determinism, Little's law, deadlines)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from servelab.core.config import ServerConfig
from servelab.core.profile import (
    CostCurve,
    GilCost,
    Interference,
    MachineInfo,
    ModelProfile,
    Profile,
    default_profile,
)
from servelab.core.requests import RECORD_COLUMNS, RECORD_FIELDS, STATUSES
from servelab.core.workload import ArrivalSpec, Phase, SizeDist, WorkloadSpec
from servelab.sim.run import simulate
from servelab.workloads import load_workload

# -- helpers -------------------------------------------------------------------------------------


def ideal(
    cores: int = 2, gil: float = 0.0, slowdown: tuple[float, ...] = (1.0,), stages: int = 1,
    speedup: tuple[float, ...] = (1.0,), models: tuple[str, ...] = ("m",), seconds: float = 1.0,
) -> Profile:
    """Deterministic 1-second jobs, no overheads: timings are exact."""
    mp = ModelProfile(
        forward=CostCurve(fixed_s=seconds), dist="deterministic", gil_share=gil, stages=stages,
        intra_op_speedup=speedup,
    )
    return Profile(
        machine=MachineInfo(cores=cores),
        models=dict.fromkeys(models, mp),
        interference=Interference(threads=slowdown, processes=slowdown),
    )


def burst(n: int, models: tuple[str, ...] = ("m",), at: float = 0.0) -> WorkloadSpec:
    """``n`` requests all arriving at time ``at`` (cycling through ``models``)."""
    mix = dict.fromkeys(models, 1.0)
    return WorkloadSpec(
        name="burst", duration=at + 1.0, arrival=ArrivalSpec(kind="trace", times=(at,) * n),
        mix=mix, sizes={m: SizeDist() for m in models}, seed=0,
    )


def cfg(**kw) -> ServerConfig:
    kw.setdefault("model_lock", "none")
    kw.setdefault("models", ("m",))
    return ServerConfig(**kw)


def ends(res) -> list[float]:
    return sorted(res.records["end"].round(9).tolist())


MIXED = load_workload("mixed")

# -- the CPU: cores, GIL, interference, intra-op threads -------------------------------------------


def test_cores_are_time_shared_when_oversubscribed():
    # 4 one-second jobs on 2 cores: with 4 workers all share (each at half speed) ...
    assert ends(simulate(cfg(workers=4, concurrency="processes"), burst(4), ideal())) == [2.0] * 4
    # ... with 2 workers they run two at a time.
    assert ends(simulate(cfg(workers=2, concurrency="processes"), burst(4), ideal())) == [
        1.0, 1.0, 2.0, 2.0
    ]


@pytest.mark.parametrize(
    ("gil", "expected"), [(0.0, 1.0), (0.5, 1.0), (0.75, 1.5), (1.0, 2.0)]
)
def test_gil_is_one_token_for_threads(gil, expected):
    # Two threads on two cores, each holding the GIL for `gil` of its work: the token is busy
    # 2 * gil of the time at full speed, so beyond 1 both slow to 1 / (2 gil).
    res = simulate(cfg(workers=2), burst(2), ideal(gil=gil))
    assert ends(res) == pytest.approx([expected] * 2)


def test_gil_contention_wastes_token_capacity():
    # Three GIL-bound threads, each extra contender wasting half the token's capacity:
    # cap(3) = 1 / (1 + 0.5 * 2) = 0.5, so each runs at 0.5 / 3 and 1 s of work takes 6 s.
    prof = replace(ideal(cores=4, gil=1.0), gil=GilCost(contention_overhead=0.5))
    assert ends(simulate(cfg(workers=3), burst(3), prof)) == pytest.approx([6.0] * 3)
    assert ends(simulate(cfg(workers=3, concurrency="processes"), burst(3), prof)) == [1.0] * 3


def test_processes_do_not_share_a_gil():
    res = simulate(cfg(workers=2, concurrency="processes"), burst(2), ideal(gil=1.0))
    assert ends(res) == [1.0, 1.0]


def test_async_thread_offload_shares_the_gil_process_offload_does_not():
    thread = simulate(cfg(workers=2, concurrency="async", offload="thread"), burst(2), ideal(gil=1.0))
    proc = simulate(cfg(workers=2, concurrency="async", offload="process"), burst(2), ideal(gil=1.0))
    assert ends(thread) == [2.0, 2.0] and ends(proc) == [1.0, 1.0]


def test_interference_slows_concurrent_jobs():
    res = simulate(
        cfg(workers=2, concurrency="processes"), burst(2), ideal(slowdown=(1.0, 1.25))
    )
    assert ends(res) == pytest.approx([1.25, 1.25])
    # Alone, no slowdown.
    assert ends(simulate(cfg(workers=1), burst(1), ideal(slowdown=(1.0, 1.25)))) == [1.0]


def test_intra_op_threads_speed_up_forward_but_use_cores():
    prof = ideal(cores=2, speedup=(1.0, 1.6))
    one = simulate(cfg(workers=1, intra_op_threads=2), burst(1), prof)
    assert ends(one) == pytest.approx([1 / 1.6])
    # Two such jobs want 4 cores of 2: each runs at half its (sped-up) speed.
    two = simulate(cfg(workers=2, intra_op_threads=2, concurrency="processes"), burst(2), prof)
    assert ends(two) == pytest.approx([2 / 1.6] * 2)


# -- server mechanisms ---------------------------------------------------------------------------


def test_per_model_lock_serializes_one_model_and_global_lock_all():
    res = simulate(cfg(workers=2, model_lock="per-model"), burst(2), ideal())
    assert ends(res) == [1.0, 2.0]
    assert (res.records["start"] == 0.0).all()  # both workers took a request at once
    # Model a at t=0, model b at t=0.5: per-model locks let them overlap, a global one not.
    two = ("a", "b")
    wl = WorkloadSpec(
        name="a-then-b", phases=(
            Phase(0.5, ArrivalSpec(kind="trace", times=(0.0,)), mix={"a": 1.0}),
            Phase(0.5, ArrivalSpec(kind="trace", times=(0.0,)), mix={"b": 1.0}),
        ), sizes={m: SizeDist() for m in two},
    )
    per_model = simulate(cfg(workers=2, model_lock="per-model", models=two), wl, ideal(models=two))
    glob = simulate(cfg(workers=2, model_lock="global", models=two), wl, ideal(models=two))
    assert ends(per_model) == [1.0, 1.5]
    assert ends(glob) == [1.0, 2.0]


@pytest.mark.parametrize(
    ("concurrency", "offload", "locked"),
    [("threads", "thread", True), ("async", "thread", True), ("async", "process", False),
     ("processes", "thread", False)],
)
def test_model_locks_apply_wherever_inference_runs_in_server_threads(concurrency, offload, locked):
    # Live, async with thread offload runs inference in the same lock-guarded thread pool as
    # the threads server; worker processes (and process offload) have no model lock.
    config = cfg(workers=2, concurrency=concurrency, offload=offload, model_lock="per-model")
    assert ends(simulate(config, burst(2), ideal())) == ([1.0, 2.0] if locked else [1.0, 1.0])


def test_ipc_cost_is_paid_by_processes_only():
    prof = default_profile()
    wl = WorkloadSpec(
        name="sparse", duration=20, arrival=ArrivalSpec(kind="constant", rate=1.0),
        mix={"mobilenet_v2": 1.0}, seed=3,
    )
    th = simulate(ServerConfig(workers=1), wl, prof).records
    pr = simulate(ServerConfig(workers=1, concurrency="processes"), wl, prof).records
    mp = prof.model("mobilenet_v2")
    ipc = prof.ipc.cost(mp.input_bytes(32) + mp.output_bytes)
    latency_gap = (pr["end"] - pr["intended_arrival"]) - (th["end"] - th["intended_arrival"])
    assert latency_gap.to_numpy() == pytest.approx(np.full(len(th), ipc), rel=1e-6)


def test_async_inline_runs_one_request_at_a_time_on_the_loop():
    res = simulate(
        ServerConfig(concurrency="async", offload="inline", workers=4), MIXED.scaled(2.0)
    )
    rec = res.records[res.records["status"] == "ok"].sort_values("start")
    assert set(rec["worker"]) == {0}
    assert (rec["start"].to_numpy()[1:] >= rec["end"].to_numpy()[:-1] - 1e-12).all()
    offloaded = simulate(ServerConfig(concurrency="async", offload="thread", workers=2), MIXED.scaled(2.0))
    assert offloaded.summary["latency_s"]["p99"] < res.summary["latency_s"]["p99"]


def test_bounded_queue_rejects_when_full():
    over = load_workload("fast-only").scaled(6.0)  # 360 req/s of MobileNetV2: overload
    res = simulate(ServerConfig(queue_capacity=8), over)
    rec = res.records
    rejected = rec[rec["status"] == "rejected"]
    assert len(rejected) > 100
    assert (rejected["queue_len_at_arrival"] == 8).all()
    assert (rec.loc[rec["status"] == "ok", "queue_len_at_arrival"] < 8).all()
    assert rejected["worker"].eq(-1).all() and rejected["start"].isna().all()
    light = simulate(ServerConfig(), load_workload("fast-only").scaled(0.5))
    assert light.summary["status"]["rejected"] == 0


def test_time_bounded_admission_bounds_the_queue_wait_of_admitted_requests():
    """The core's ``max_wait`` in simulation: 1-second jobs, one worker, 2 req/s offered.  No
    request that runs has queued longer than the bound; the others are refused or shed, and the
    worker never idles while requests are offered."""
    arrivals = tuple(0.5 * i for i in range(20))  # 2 req/s offered to a 1 req/s server
    wl = WorkloadSpec(name="over", duration=10.0, arrival=ArrivalSpec(kind="trace", times=arrivals),
                      mix={"m": 1.0}, sizes={"m": SizeDist()}, seed=0)
    res = simulate(cfg(workers=1, max_queue_wait_ms=2500.0), wl, ideal(cores=1))
    rec = res.records
    ok = rec[rec["status"] == "ok"]
    assert (rec["status"] == "rejected").sum() > 0
    waits = ok["start"] - ok["enqueue"]
    assert waits.max() <= 2.5 + 1e-9
    assert len(ok) >= 9  # one job a second over 10 s of arrivals: the worker kept busy
    unbounded = simulate(cfg(workers=1), wl, ideal(cores=1)).records
    assert (unbounded["status"] == "ok").all()
    assert (unbounded["start"] - unbounded["enqueue"]).max() > waits.max() + 1.0


@pytest.mark.parametrize("scheduler", ["fifo", "sjf", "priority", "mlfq"])
def test_no_request_waits_past_its_deadline(scheduler):
    wl = replace(load_workload("mixed").scaled(4.0), deadline_ms={"*": 200.0})
    res = simulate(ServerConfig(scheduler=scheduler), wl)
    rec = res.records
    deadline = rec["intended_arrival"] + 0.2
    assert res.summary["status"]["timeout"] > 0
    started = rec["start"].notna()
    assert (rec.loc[started, "start"] <= deadline[started] + 1e-9).all()
    timed_out = rec["status"] == "timeout"
    never_started = timed_out & ~started
    assert np.allclose(rec.loc[never_started, "end"], deadline[never_started])
    assert res.summary["little"]["rel_err"] < 1e-9


def test_dynamic_batching_fills_batches_and_waits_at_most_the_timeout():
    over = load_workload("fast-only").scaled(4.0)
    b1 = simulate(ServerConfig(model_lock="none"), over)
    b8 = simulate(ServerConfig(model_lock="none", max_batch=8, batch_timeout_ms=5.0), over)
    ok = b8.records[b8.records["status"] == "ok"]
    assert ok["batch_size"].max() <= 8 and ok["batch_size"].mean() > 1.5
    # Members of one batch start and end together on one worker.
    for _, g in ok.groupby(["worker", "start"]):
        assert g["end"].nunique() == 1 and (g["batch_size"] == len(g)).all()
    assert b8.summary["throughput"] > b1.summary["throughput"]
    # At a trickle every batch is one request that waited exactly the timeout.
    trickle = WorkloadSpec(
        name="trickle", duration=30, arrival=ArrivalSpec(kind="constant", rate=1.0),
        mix={"mobilenet_v2": 1.0},
    )
    t = simulate(ServerConfig(max_batch=4, batch_timeout_ms=10.0), trickle).records
    assert (t["batch_size"] == 1).all()
    assert np.allclose(t["start"] - t["enqueue"], 0.010)


def test_mlfq_preempts_long_jobs_at_stage_boundaries():
    # One worker; a few long requests (8 stages of 1 s) among many short ones (1 stage, 0.1 s).
    long = ModelProfile(forward=CostCurve(fixed_s=8.0), dist="deterministic", stages=8)
    short = ModelProfile(forward=CostCurve(fixed_s=0.1), dist="deterministic", stages=1)
    prof = Profile(machine=MachineInfo(cores=1), models={"long": long, "short": short})
    wl = WorkloadSpec(
        name="two-sizes", duration=2000, arrival=ArrivalSpec(kind="poisson", rate=0.8),
        mix={"long": 0.08, "short": 0.92}, sizes={"long": SizeDist(), "short": SizeDist()}, seed=5,
    )
    config = ServerConfig(workers=1, models=("long", "short"), model_lock="none")
    fifo = simulate(config, wl, prof)
    mlfq = simulate(replace(config, scheduler="mlfq"), wl, prof, policy_kwargs={"quanta": (0.5,)})

    def p50(res, model):
        return res.summary["per_model"][model]["p50"]

    assert p50(mlfq, "short") < 0.5 * p50(fifo, "short")
    rec = mlfq.records[mlfq.records["model"] == "long"]
    # Preempted: long requests take longer than their 8 s of work even when they start at once.
    assert ((rec["end"] - rec["start"]) > 8.0 + 1e-9).mean() > 0.5
    # Work is conserved: both disciplines finish the same work by the same time.
    assert mlfq.records["end"].max() == pytest.approx(fifo.records["end"].max())


# -- invariants ------------------------------------------------------------------------------------

CONFIGS = [
    ServerConfig(),
    ServerConfig(concurrency="processes", scheduler="sjf", workers=4),
    ServerConfig(concurrency="async", offload="inline", scheduler="priority"),
    ServerConfig(concurrency="async", offload="process", scheduler="mlfq", workers=3),
    ServerConfig(scheduler="mlfq", max_batch=4, batch_timeout_ms=5.0, model_lock="global"),
    ServerConfig(max_batch=8, batch_timeout_ms=2.0, queue_capacity=16, intra_op_threads=2),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.config_id)
def test_records_schema_determinism_and_littles_law(config):
    wl = replace(MIXED.scaled(3.0), deadline_ms={"distilbert": 1500.0, "*": 400.0}, duration=30.0)
    a = simulate(config, wl, seed=11)
    b = simulate(config, wl, seed=11)
    pd.testing.assert_frame_equal(a.records, b.records)
    c = simulate(config, wl, seed=12)
    assert not a.records.equals(c.records)
    rec = a.records
    assert tuple(rec.columns[: len(RECORD_COLUMNS)]) == RECORD_COLUMNS
    for name, dtype in RECORD_FIELDS:
        assert str(rec[name].dtype) == dtype, name
    assert set(rec["status"]) <= set(STATUSES)
    assert (rec["config_id"] == config.config_id).all()
    assert rec["request_id"].tolist() == list(range(len(rec)))
    ok = rec[rec["status"] == "ok"]
    assert (ok["enqueue"] <= ok["start"]).all() and (ok["start"] < ok["end"]).all()
    assert ok["batch_size"].between(1, config.max_batch).all()
    assert ok["worker"].between(0, config.workers - 1).all()
    assert a.summary["little"]["rel_err"] < 1e-9, a.summary["little"]
    assert math.isfinite(a.summary["throughput"])


def test_unknown_model_is_a_clear_error():
    wl = WorkloadSpec(mix={"resnet": 1.0})
    with pytest.raises(ValueError, match="no service model"):
        simulate(ServerConfig(), wl)


def test_threads_stop_scaling_for_mobilenet_but_processes_scale():
    # The design's 16-core fact: MobileNetV2 is GIL-bound, DistilBERT is not.
    prof = replace(default_profile(), machine=MachineInfo(cores=16))

    def capacity(concurrency: str, workers: int, model: str, rate: float) -> float:
        wl = WorkloadSpec(
            name="overload", duration=20, arrival=ArrivalSpec(kind="poisson", rate=rate),
            mix={model: 1.0}, sizes={model: SizeDist(kind="fixed", value=128)}, seed=2,
        )
        c = ServerConfig(
            concurrency=concurrency, workers=workers, model_lock="none", queue_capacity=8
        )
        return simulate(c, wl, prof).summary["throughput"]

    th2, th4 = capacity("threads", 2, "mobilenet_v2", 1000), capacity("threads", 4, "mobilenet_v2", 1000)
    pr2, pr4 = (capacity("processes", 2, "mobilenet_v2", 1000),
                capacity("processes", 4, "mobilenet_v2", 1000))
    assert th2 >= 1.4 * capacity("threads", 1, "mobilenet_v2", 1000)
    assert th4 < th2  # stops scaling at 2 threads and gets slower beyond
    assert pr4 >= 1.8 * pr2
    bt2, bt4 = capacity("threads", 2, "distilbert", 40), capacity("threads", 4, "distilbert", 40)
    bp2, bp4 = capacity("processes", 2, "distilbert", 40), capacity("processes", 4, "distilbert", 40)
    assert bt4 / bt2 == pytest.approx(bp4 / bp2, rel=0.1)
    assert bt4 >= 1.6 * bt2


def test_a_batch_after_an_idle_gap_pays_the_cold_extra():
    prof = ideal(cores=1)
    mp = replace(prof.models["m"], cold=((0.0, 0.0), (0.5, 0.25), (1.0, 0.5)))
    prof = replace(prof, models={"m": mp})
    # Back to back: warm.  Then a request 2 s after the worker went idle: the full extra.
    spec = replace(burst(2), arrival=ArrivalSpec(kind="trace", times=(0.0, 0.0, 4.0)),
                   duration=5.0)
    res = simulate(cfg(workers=1), spec, prof)
    # first is cold (the worker never ran): 1.5; second right after: 2.5; third: 4 + 1.5
    assert ends(res) == [pytest.approx(1.5), pytest.approx(2.5), pytest.approx(5.5)]


def test_a_model_goes_cold_while_its_worker_runs_another():
    # One worker: a (1 s), then b (1 s), then a again.  a's caches went cold while b ran
    # (0.5 s extra after a 1 s gap), though the worker never sat idle; b is never cold.
    a = replace(ideal().models["m"], cold=((0.0, 0.0), (1.0, 0.5)))
    prof = replace(ideal(cores=1), models={"a": a, "b": ideal().models["m"]})
    one = ArrivalSpec(kind="trace", times=(0.0,))
    spec = WorkloadSpec(
        name="ab", duration=4.0, arrival=one, mix={"a": 1.0, "b": 1.0},
        sizes={"a": SizeDist(), "b": SizeDist()}, seed=0,
        phases=(Phase(0.01, one, mix={"a": 1.0}), Phase(0.01, one, mix={"b": 1.0}),
                Phase(3.98, one, mix={"a": 1.0})))
    res = simulate(cfg(workers=1, models=("a", "b")), spec, prof)
    order = res.records.sort_values("start")[["model", "start", "end"]]
    assert order["model"].tolist() == ["a", "b", "a"]
    # a's first run is cold (never ran): 1.5; b: 2.5; a after b: 2.5 + 1 + 0.5
    assert order["end"].round(9).tolist() == [1.5, 2.5, 4.0]


@pytest.mark.parametrize("concurrency, second_end", [("threads", 1.5), ("processes", 2.0)])
def test_inference_threads_share_a_models_warmth_worker_processes_do_not(concurrency,
                                                                          second_end):
    # Two requests 0.5 s apart on two workers (the second goes to the other, idle worker).
    # Threads share one copy of the weights: the model runs on the first thread, so the
    # second starts warm (0.5 + 1).  A second worker process never ran it: cold (0.5 + 1.5).
    mp = replace(ideal().models["m"], cold=((0.0, 0.0), (1.0, 0.5)))
    prof = replace(ideal(cores=2), models={"m": mp})
    spec = replace(burst(1), arrival=ArrivalSpec(kind="trace", times=(0.0, 0.5)), duration=3.0)
    res = simulate(cfg(concurrency=concurrency, workers=2), spec, prof)
    assert sorted(res.records["worker"].tolist()) == [0, 1]
    assert ends(res) == [pytest.approx(1.5), pytest.approx(second_end)]


def test_idle_workers_take_turns_like_the_live_pools():
    # Spaced requests on 2 workers: the longest-idle worker takes each (round robin), as
    # pool threads waiting on one condition variable are woken in the order they waited.
    spec = replace(burst(1), arrival=ArrivalSpec(kind="trace", times=(0.0, 2.0, 4.0, 6.0)),
                   duration=8.0)
    res = simulate(cfg(workers=2), spec, ideal())
    assert res.records.sort_values("start")["worker"].tolist() == [0, 1, 0, 1]


def test_a_kernel_configuration_is_simulated_on_its_kernel_costs():
    from servelab.core.profile import CostCurve

    prof = ideal(models=("mobilenet_v2",), seconds=0.01)
    slow = replace(prof.models["mobilenet_v2"], forward=CostCurve(fixed_s=0.03))
    prof = replace(prof, models={**prof.models, "mobilenet_v2+python": slow})
    spec = replace(burst(1, models=("mobilenet_v2",)),
                   arrival=ArrivalSpec(kind="trace", times=(0.0, 1.0)), duration=2.0)
    torch_run = simulate(cfg(models=("mobilenet_v2",)), spec, prof)
    kern = simulate(cfg(models=("mobilenet_v2",), kernel="python"), spec, prof)
    assert ends(torch_run) == [pytest.approx(0.01), pytest.approx(1.01)]
    assert ends(kern) == [pytest.approx(0.03), pytest.approx(1.03)]
    assert kern.summary["modelled"]["kernel"].startswith("python: calibrated for mobilenet_v2")
    assert torch_run.summary["modelled"]["kernel"] == "torch"
