"""The differential test of the design's rule 1 ("one policy, two clocks").

The same arrivals and the same per-batch service times go through both wrappers of the
scheduling core:

* the live :class:`~servelab.servers.engine.Engine`, on a fake clock, driven single-threaded by
  a small event loop below that plays the executors (``poll`` / ``on_stage`` / ``requeue`` /
  ``finish``; ``reap`` at each deadline) — no threads, no sleeping;
* the :class:`~servelab.sim.server.SimServer` on a deterministic profile (no overheads, no GIL,
  as many cores as workers, so a batch of ``b`` requests of model ``m`` takes exactly
  ``SERVICE[m] * b ** EXPONENT`` seconds, in ``STAGES[m]`` equal stages);

and both must dispatch the same batches in the same order to the same workers, and give every
request the same status, start, end, worker and batch size — for every policy, with and without
batching (and its timeout), deadlines, a bounded queue and a bounded queue wait.  FIFO without batching is also
checked against a textbook multi-server FIFO queue written out by hand.

The arrivals avoid exact ties between events (continuous random times), because the two
drivers need not break ties the same way; service times and MLFQ quanta are chosen so that no
quantum is an exact sum of stage times.  The predictor rounds its estimates to nanoseconds so
that both drivers' float noise (the simulated CPU integrates time) cannot reorder SJF.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import math
from typing import Any

import numpy as np
import pytest
import simpy

from servelab.core.config import ServerConfig
from servelab.core.policies import make_policy
from servelab.core.predictor import MeanPredictor
from servelab.core.profile import CostCurve, Interference, MachineInfo, ModelProfile, Profile
from servelab.core.requests import Request
from servelab.core.scheduling import Batch
from servelab.core.workload import Arrivals, ArrivalSpec, SizeDist, WorkloadSpec
from servelab.servers.engine import Engine
from servelab.servers.tickets import ServeError
from servelab.servers.zoo.base import StageTimes
from servelab.sim.cpu import FluidCpu
from servelab.sim.server import SimServer
from servelab.sim.service import ServiceModel

MODELS = ("a", "b", "c")
SERVICE = {"a": 0.0371, "b": 0.1234, "c": 0.0613}  # seconds at batch size 1
STAGES = {"a": 1, "b": 4, "c": 2}
EXPONENT = 0.8
MIX = {"a": 0.5, "b": 0.2, "c": 0.3}
PRIORITIES = {"a": 1, "b": 2, "c": 0}
MLFQ = {"quanta": (0.047, 0.19), "boost_interval": 0.61}
ROW = [{}]


class RoundedMean(MeanPredictor):
    """The per-model running mean, rounded to 1 ns (both drivers get a fresh one)."""

    def predict(self, request: Request) -> float:
        return round(super().predict(request), 9)


def predictor() -> RoundedMean:
    return RoundedMean(priors={"a": 0.04, "b": 0.12, "c": 0.06})


def policy_kwargs(name: str) -> dict[str, Any]:
    return dict(MLFQ) if name == "mlfq" else {}


def batch_seconds(model: str, size: int) -> float:
    return SERVICE[model] * size**EXPONENT


def profile(cores: int) -> Profile:
    return Profile(
        machine=MachineInfo(cores=cores),
        models={m: ModelProfile(forward=CostCurve(fixed_s=SERVICE[m]), dist="deterministic",
                                stages=STAGES[m], batch_exponent=EXPONENT) for m in MODELS},
        interference=Interference(threads=(1.0,), processes=(1.0,)),
    )


def workload(n: int, rate: float, seed: int, deadline_ms: dict[str, float] | None) -> WorkloadSpec:
    rng = np.random.default_rng(seed)
    times = np.sort(rng.uniform(0.0, n / rate, n))
    return WorkloadSpec(
        name="differential", duration=float(times[-1]) + 1.0,
        arrival=ArrivalSpec(kind="trace", times=tuple(times.tolist())), mix=MIX,
        sizes={m: SizeDist() for m in MODELS}, priorities=PRIORITIES,
        deadline_ms=deadline_ms or {}, seed=seed,
    )


Dispatch = tuple[float, int, tuple[int, ...], int]
"""(time, worker, request ids, preemptions so far) of one dispatch."""


# -- the simulator -------------------------------------------------------------------------------
def run_sim(config: ServerConfig, arrivals: Arrivals) -> tuple[list[Request], list[Dispatch], Any]:
    env = simpy.Environment()
    prof = profile(config.workers)
    service = ServiceModel(prof, config, arrivals, np.random.default_rng(0))
    cpu = FluidCpu(env, prof.machine.cores, None, shared_gil=service.shared_gil)
    pred = predictor()
    pol = make_policy(config.scheduler, predictor=pred, **policy_kwargs(config.scheduler))
    server = SimServer(env, config, arrivals, service, cpu, pol, pred)
    log: list[Dispatch] = []
    take = server.scheduler.take

    def logged(now: float, worker: int = -1) -> Any:
        got = take(now, worker)
        if isinstance(got, Batch):
            log.append((now, got.worker, tuple(r.id for r in got.requests), got.preemptions))
        return got

    server.scheduler.take = logged  # type: ignore[method-assign]
    server.start()
    env.run()
    server.check_finished()
    return server.requests, log, pred


# -- the live engine on a fake clock -------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def run_engine(
    config: ServerConfig, arrivals: Arrivals, deadline_ms: dict[str, float] | None
) -> tuple[list[dict], list[Dispatch], Any]:
    """Play ``config.workers`` executors against an Engine, event by event, in time order
    (the requests carry ``deadline_ms`` of their model as their timeout, as the workload
    gives them to the simulator)."""
    clock = FakeClock()
    pred = predictor()
    pol = make_policy(config.scheduler, predictor=pred, **policy_kwargs(config.scheduler))
    eng = Engine(config, predictor=pred, policy=pol, sample_cpu=False, clock=clock, reaper=False)
    preemptive = pol.preemptive
    events: list[tuple[float, int, str, Any]] = []
    seq = itertools.count()
    # Longest idle first, as live pool threads waiting on one condition variable are woken.
    free = collections.deque(range(config.workers))
    log: list[Dispatch] = []
    pending = {"wake": math.inf, "reap": math.inf}

    def at(t: float, kind: str, data: Any = None) -> None:
        heapq.heappush(events, (t, next(seq), kind, data))

    def dispatch(now: float) -> None:
        while free:
            job, wait = eng.poll(worker=free[0])
            if job is None:
                if wait is not None and now + wait < pending["wake"]:
                    pending["wake"] = now + wait
                    at(now + wait, "wake")
                return
            free.popleft()
            log.append((now, job.worker, tuple(r.id for r in job.requests), job.preemptions))
            total = batch_seconds(job.model, len(job.requests))
            if preemptive:
                at(now + total / STAGES[job.model], "stage", job)
            else:
                at(now + total, "done", job)

    def done(job: Any, now: float, forward: float) -> None:
        job.times = StageTimes(forward=job.times.forward + forward)
        eng.finish(job, [{} for _ in job.requests])
        free.append(job.worker)
        dispatch(now)

    models = arrivals.models
    for i, t in enumerate(arrivals.times.tolist()):
        at(t, "arrive", i)
    while events:
        now, _, kind, data = heapq.heappop(events)
        clock.t = now
        if kind == "arrive":
            i = data
            model = models[arrivals.model_idx[i]]
            p = int(arrivals.priority[i])
            try:
                eng.submit(model, ROW, priority=None if p < 0 else p,
                           timeout_ms=(deadline_ms or {}).get(model),
                           input_size=int(arrivals.input_size[i]), arrival=now)
            except ServeError:
                pass
            else:
                if free:
                    dispatch(now)
        elif kind == "wake":
            if now == pending["wake"]:
                pending["wake"] = math.inf
                dispatch(now)
        elif kind == "reap":
            if now == pending["reap"]:
                pending["reap"] = math.inf
                eng.reap()
        elif kind == "done":
            done(data, now, batch_seconds(data.model, len(data.requests)))
        else:  # one stage of a preemptive run ended
            job = data
            ran = batch_seconds(job.model, len(job.requests)) / STAGES[job.model]
            job.stage += 1
            if job.stage == STAGES[job.model]:
                done(job, now, ran)
            elif eng.on_stage(job, ran):
                job.times = StageTimes(forward=job.times.forward + ran)
                eng.requeue(job)
                free.append(job.worker)
                dispatch(now)
            else:
                job.times = StageTimes(forward=job.times.forward + ran)
                at(now + ran, "stage", job)
        nd = eng.next_deadline()
        if nd is not None and nd < pending["reap"]:
            pending["reap"] = nd
            at(nd, "reap")
    assert eng.inflight == 0
    recs = sorted(eng.trace(), key=lambda r: r["request_id"])
    eng.close()
    return recs, log, pred


# -- the comparison ----------------------------------------------------------------------------
def same_time(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-9


def assert_same(sim: tuple[list[Request], list[Dispatch], Any],
                live: tuple[list[dict], list[Dispatch], Any]) -> None:
    sim_reqs, sim_log, sim_pred = sim
    live_recs, live_log, live_pred = live
    assert len(sim_log) == len(live_log)
    for k, (s, li) in enumerate(zip(sim_log, live_log, strict=True)):
        assert s[1:] == li[1:] and same_time(s[0], li[0]), f"dispatch {k}: sim {s} live {li}"
    assert [r["request_id"] for r in live_recs] == [r.id for r in sim_reqs]
    for r, rec in zip(sim_reqs, live_recs, strict=True):
        where = f"request {r.id}: sim {r.to_record()} live {rec}"
        assert (r.status, r.worker, r.batch_size) == (
            rec["status"], rec["worker"], rec["batch_size"]), where
        for col in ("enqueue", "start", "end"):
            assert same_time(getattr(r, col), rec[col]), f"{col} of {where}"
    # The predictor learned the same thing from both (each batch's compute time, per member).
    assert sim_pred._n == live_pred._n
    assert sim_pred.means() == pytest.approx(live_pred.means(), rel=1e-9)


DEADLINES = {"a": 30.0, "b": 450.0, "c": 180.0}  # a's is shorter than the batch timeout
SETUPS = {
    "solo": dict(workers=2, max_batch=1),
    "batching": dict(workers=2, max_batch=4, batch_timeout_ms=40.0),
    "deadlines": dict(workers=2, max_batch=1, queue_capacity=4),
    "batching+deadlines": dict(workers=3, max_batch=3, batch_timeout_ms=40.0, queue_capacity=5),
    "bounded-wait": dict(workers=2, max_batch=1, max_queue_wait_ms=150.0),
    "batching+bounded-wait+deadlines": dict(workers=2, max_batch=4, batch_timeout_ms=40.0,
                                            max_queue_wait_ms=120.0),
}


@pytest.mark.parametrize("setup", list(SETUPS))
@pytest.mark.parametrize("scheduler", ["fifo", "sjf", "priority", "mlfq"])
def test_engine_and_simulator_schedule_identically(scheduler: str, setup: str):
    config = ServerConfig(scheduler=scheduler, models=MODELS, model_lock="none",
                          **SETUPS[setup])
    deadlines = DEADLINES if "deadlines" in setup else None
    # Above capacity for stretches (mean batch-1 service ~65 ms, 2-3 workers): queues build,
    # batches fill, MLFQ preempts, deadlines pass.
    spec = workload(n=260, rate=36.0 * config.workers / 2, seed=3, deadline_ms=deadlines)
    arrivals = spec.generate()
    sim = run_sim(config, arrivals)
    live = run_engine(config, arrivals, deadlines)
    assert_same(sim, live)
    statuses = {r.status for r in sim[0]}
    assert "ok" in statuses
    if deadlines:
        assert "timeout" in statuses
    if config.queue_capacity < 256 or config.max_queue_wait_ms > 0:
        assert "rejected" in statuses
    if config.max_batch > 1:
        assert max(r.batch_size for r in sim[0]) > 1
    if scheduler == "mlfq":
        assert any(d[3] > 0 for d in sim[1]), "no batch was ever preempted"


@pytest.mark.parametrize("setup", ["solo", "deadlines"])
def test_fifo_matches_a_textbook_multi_server_queue(setup: str):
    config = ServerConfig(scheduler="fifo", models=MODELS, model_lock="none", **SETUPS[setup])
    deadlines = DEADLINES if setup == "deadlines" else None
    arrivals = workload(n=260, rate=36.0, seed=5, deadline_ms=deadlines).generate()
    want = reference_fifo(arrivals, config.workers, config.queue_capacity)
    sim_reqs, _, _ = run_sim(config, arrivals)
    live_recs, _, _ = run_engine(config, arrivals, deadlines)
    for r, rec, (status, start, end) in zip(sim_reqs, live_recs, want, strict=True):
        assert r.status == rec["status"] == status, r.id
        for got in (r.start, rec["start"]):
            assert same_time(got, start), r.id
        for got in (r.end, rec["end"]):
            assert same_time(got, end), r.id


def reference_fifo(arrivals: Arrivals, workers: int, capacity: int) -> list[tuple[str, float, float]]:
    """FIFO with ``workers`` servers, written out by hand: each request, in arrival order, takes
    the earliest free server unless its deadline comes first (then it times out at its
    deadline) or ``capacity`` requests are waiting when it arrives (then it is refused)."""
    free = [0.0] * workers
    out: list[tuple[str, float, float]] = []
    waiting: list[float] = []  # when each admitted request leaves the queue (start or expiry)
    for i, t in enumerate(arrivals.times.tolist()):
        if sum(1 for leave in waiting if leave > t) >= capacity:
            out.append(("rejected", math.nan, t))
            continue
        s = max(t, free[0])
        d = arrivals.deadline[i]
        if not math.isnan(d) and s >= d:
            out.append(("timeout", math.nan, float(d)))
            waiting.append(float(d))
            continue
        e = s + batch_seconds(arrivals.models[arrivals.model_idx[i]], 1)
        heapq.heapreplace(free, e)
        out.append(("ok", s, e))
        waiting.append(s)
    return out
