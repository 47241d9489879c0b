"""The simulated server: the scheduling core on simulated time, with workers, the CPU model and
model locks around it.

Every scheduling decision — admission, the queue policy, batch formation and the batch
timeout, dispatch, stage-boundary preemption, requeue, deadlines, predictor feedback — is
:class:`servelab.core.scheduling.Scheduler`'s, the object the live engine wraps too.  This
module adds only what the simulator itself models, driven by callbacks on a SimPy environment
(no per-request SimPy process, so a request costs a handful of heap operations):

* **arrival** (one timer per arrival, chained): the request enters the scheduler through
  :meth:`SimServer.admit` — the hook a simulated front end calls after its own delay;
* **workers**: a free worker asks the core for a batch (``take``); when the core says a batch
  is waiting to fill, one timer wakes the workers at the time it names;
* **model locks** (wherever inference runs in threads of the server process: ``threads``, and
  ``async`` with ``offload="thread"``): with ``model_lock`` ``per-model`` (or ``global``) a
  worker that took a batch whose model is busy waits for the lock, holding its batch and its
  slot (first come, first served) — live, that worker's thread blocks the same way;
* **cold starts**: a batch costs the model's measured extra CPU for the time since that
  model last ran where its weights live (``ModelProfile.cold``: caches cold, the core asleep,
  or another model's work in between) — anywhere in the server process for inference threads
  (they share one copy of the weights and the last-level cache: a model running on one thread
  keeps it warm for the others), on the worker itself for worker processes;
* **execution**: the batch's CPU job runs on the :class:`~servelab.sim.cpu.FluidCpu`; under a
  preemptive policy (MLFQ) it runs stage by stage and after each stage but the last the core
  decides whether to stop it there (the lead request decides for the whole batch); a stopped
  batch goes back to the queue whole and releases its worker and lock;
* **completion**: the core ends the batch's requests and feeds the predictor the batch's
  compute time — the seconds its CPU jobs ran (lock waits and time spent preempted excluded);
* **deadlines**: the core's rules (a queued request ends ``timeout`` at its deadline, or
  ``rejected`` once it has waited ``max_queue_wait_ms``; a running one finishes).  The
  simulator asks for expired requests lazily — whenever it calls the core — and the core
  dates each at its deadline, so the records are exact.

The record of every request follows :data:`servelab.core.requests.RECORD_FIELDS`.  The HTTP,
IPC and event-loop costs are part of the job (see :mod:`servelab.sim.service`), so ``enqueue``
is the instant the request reached :meth:`SimServer.admit` and ``start`` is when a worker took
it from the queue.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import simpy
from simpy.events import Timeout

from servelab.core.config import ServerConfig
from servelab.core.policies import QueuePolicy
from servelab.core.predictor import RuntimePredictor
from servelab.core.profile import ModelProfile
from servelab.core.requests import Request
from servelab.core.scheduling import Batch, Scheduler
from servelab.core.workload import Arrivals
from servelab.sim.cpu import FluidCpu
from servelab.sim.service import Job, ServiceModel


def inference_in_threads(config: ServerConfig) -> bool:
    """Whether inference runs in threads of the server process, where ``model_lock`` guards
    the models (threads; async with thread offload)."""
    return config.concurrency == "threads" or (
        config.concurrency == "async" and config.offload == "thread"
    )


@dataclass(eq=False, slots=True)
class SimBatch(Batch):
    """A :class:`~servelab.core.scheduling.Batch` with the simulator's execution state."""

    mp: ModelProfile | None = None
    job: Job | None = None  # the CPU job of the current run (segments = stages)
    seg: int = 0  # segments of ``job`` done
    seg_start: float = 0.0
    stage: int = 0  # the model's next forward stage (advances under preemptive policies)
    compute: float = 0.0  # seconds the batch's CPU jobs ran: the predictor's feedback
    lock: Any = None  # the model lock it holds or waits for (None: no locking)


class SimServer:
    """One server configuration under one generated workload (see the module docstring).

    ``on_complete(request)``, when set, is called once for every request that ends (any
    status, rejected ones included), at the simulated instant it ends — except an expired
    request, which the core dates at its deadline (``request.end``) and the simulator learns
    of at its next call to the core.
    """

    def __init__(
        self,
        env: simpy.Environment,
        config: ServerConfig,
        arrivals: Arrivals,
        service: ServiceModel,
        cpu: FluidCpu,
        policy: QueuePolicy,
        predictor: RuntimePredictor | None = None,
    ):
        self.env = env
        self.config = config
        self.service = service
        self.cpu = cpu
        self.policy = policy
        self.predictor = predictor
        self.scheduler: Scheduler[SimBatch] = Scheduler.for_config(
            config, SimBatch, policy=policy, predictor=predictor
        )
        self.preemptive = policy.preemptive
        inline = config.concurrency == "async" and config.offload == "inline"
        self.workers = 1 if inline else config.workers  # inline: the event loop is the worker
        self.free: deque[int] = deque(range(self.workers))
        """Idle workers, longest idle first: the live pools' workers wait on one condition
        variable, whose notify wakes the longest waiter, so work goes round the pool."""
        self._last_end: dict[tuple[int, str], float] = {}
        """When each model last finished a batch, per warmth domain (:meth:`_warmth`): a
        model's caches go cold while its domain runs anything else, not only while it idles."""
        self._running: dict[tuple[int, str], int] = {}
        """Batches of each model running now, per warmth domain (a running model is warm)."""
        self._shared_warmth = inference_in_threads(config) or inline
        self._batch_timer: Timeout | None = None
        self._batch_timer_at = math.inf
        self.locking = inference_in_threads(config) and config.model_lock != "none"
        self.global_lock = config.model_lock == "global"
        self._locks: dict[Any, deque[SimBatch] | None] = {}  # key -> waiters (None: lock free)
        self._profiles = {m: service.model_profiles[i] for i, m in enumerate(arrivals.models)}
        self.on_complete: Callable[[Request], None] | None = None
        self.entry: Callable[[Request, float], Any] = self.admit
        """Where an arriving request goes: :meth:`admit`, or a simulated front end."""
        # Arrivals as plain lists.
        self._times = arrivals.times.tolist()
        names = arrivals.models
        self._model = [names[m] for m in arrivals.model_idx.tolist()]
        self._size = arrivals.input_size.tolist()
        self._prio = [None if p < 0 else p for p in arrivals.priority.tolist()]
        self._deadline = [None if math.isnan(d) else d for d in arrivals.deadline.tolist()]
        # Queued requests can expire: at their deadlines, or shed at the queue-wait bound.
        self._has_deadlines = (any(d is not None for d in self._deadline)
                               or self.scheduler.max_wait > 0)
        self.requests: list[Request] = []
        # Occupancy (Little's law): number in system and its time integral.
        self.in_system = 0
        self.area = 0.0
        self._t_area = 0.0
        self.accepted = 0

    # -- driving ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Schedule the first arrival (call once, then run the environment)."""
        if self._times:
            t = Timeout(self.env, self._times[0])
            t.callbacks.append(self._arrive)  # type: ignore[union-attr]

    def _occupancy(self, delta: int) -> None:
        """Advance the time integral of the number in system to now, then add ``delta``."""
        now = self.env._now
        self.area += self.in_system * (now - self._t_area)
        self._t_area = now
        self.in_system += delta

    # -- arrivals --------------------------------------------------------------------------------
    def _arrive(self, _event: Any) -> None:
        env = self.env
        now = env._now
        i = len(self.requests)
        if i + 1 < len(self._times):
            nxt = Timeout(env, max(self._times[i + 1] - now, 0.0))
            nxt.callbacks.append(self._arrive)  # type: ignore[union-attr]
        r = Request(
            id=i, model=self._model[i], input_size=self._size[i], arrival=self._times[i],
            priority=self._prio[i], deadline=self._deadline[i],
            service_time=self.service.service[i],
        )
        self.requests.append(r)
        self.entry(r, now)

    def admit(self, request: Request, now: float) -> bool:
        """The request enters the scheduler at ``now``: queued (True; a free worker is woken)
        or refused (False; it has ended, status ``rejected`` or ``timeout``).

        This is the one entry point of a request into the server: the arrival path calls it
        at the request's arrival; a simulated front end calls it once the request has passed
        the front end.  ``request.id`` must index the :class:`ServiceModel`'s arrays.
        """
        self.area += self.in_system * (now - self._t_area)
        self._t_area = now
        refused = self.scheduler.admit(request, now)
        if self._has_deadlines:
            self._expired(now)
        if refused is not None:
            if self.on_complete is not None:
                self.on_complete(request)
            return False
        self.accepted += 1
        self.in_system += 1
        if self.free:
            self._dispatch(now)
        return True

    def _expired(self, now: float) -> None:
        """Account the requests the core expired (dated at their deadlines, before ``now``)."""
        gone = self.scheduler.expire(now)
        if not gone:
            return
        self._occupancy(0)
        cb = self.on_complete
        for r, _ in gone:
            self.in_system -= 1
            self.area -= now - r.end  # they left the system at r.end, not now
            if cb is not None:
                cb(r)

    # -- dispatch --------------------------------------------------------------------------------
    def _dispatch(self, now: float) -> None:
        sched = self.scheduler
        free = self.free
        while free:
            got = sched.take(now, free[0])
            if got is None:
                break
            if isinstance(got, float):
                self._wake_at(got, now)
                break
            free.popleft()
            self._start(got, now)
        if self._has_deadlines:
            self._expired(now)

    def _wake_at(self, at: float, now: float) -> None:
        """One pending timer wakes the free workers when the core said to ask again."""
        if at < self._batch_timer_at:
            self._batch_timer_at = at
            timer = Timeout(self.env, at - now)
            timer.callbacks.append(self._on_batch_timer)  # type: ignore[union-attr]
            self._batch_timer = timer

    def _on_batch_timer(self, event: Any) -> None:
        if event is not self._batch_timer:
            return
        self._batch_timer = None
        self._batch_timer_at = math.inf
        self._dispatch(self.env._now)

    def _start(self, batch: SimBatch, now: float) -> None:
        reqs = batch.requests
        b = len(reqs)
        for r in reqs:
            r.batch_size = b
        if batch.mp is None:
            batch.mp = self._profiles[batch.model]
        if self.locking:
            batch.lock = "*" if self.global_lock else batch.model
            waiters = self._locks.get(batch.lock)
            if waiters is not None:
                waiters.append(batch)  # lock busy: wait for it, holding the batch
                return
            self._locks[batch.lock] = deque()
        self._run(batch, now)

    # -- execution -------------------------------------------------------------------------------
    def _warmth(self, batch: SimBatch) -> tuple[int, str]:
        """Where ``batch``'s model stays warm: the process (-1) for inference threads, which
        share its weights, or the batch's own worker process."""
        return (-1 if self._shared_warmth else batch.worker, batch.model)

    def _cold(self, batch: SimBatch, now: float) -> float:
        """Extra CPU of a batch for the time since its model last ran in its warmth domain
        (``ModelProfile.cold``); none while another batch of it runs there."""
        mp = batch.mp
        if mp is None or not mp.cold:
            return 0.0
        key = self._warmth(batch)
        if self._running.get(key, 0):
            return 0.0
        return mp.cold_extra(now - self._last_end.get(key, -math.inf))

    def _run(self, batch: SimBatch, now: float) -> None:
        batch.seg_start = now
        reqs = batch.requests
        extra = self._cold(batch, now)
        key = self._warmth(batch)
        self._running[key] = self._running.get(key, 0) + 1
        if not self.preemptive and len(reqs) == 1:
            i = reqs[0].id
            svc = self.service
            self.cpu.submit(svc.solo_work[i] + extra, svc.solo_demand[i], svc.solo_gil[i],
                            self._done, batch, kind=batch.model)
            return
        mp = batch.mp
        assert mp is not None
        job = self.service.job(reqs, mp, batch.stage, split=self.preemptive)
        batch.job = job
        batch.seg = 0
        self.cpu.submit(job.segments[0] + extra, job.demand, job.gil, self._segment_done, batch,
                        kind=batch.model)

    def _segment_done(self, batch: SimBatch) -> None:
        now = self.env._now
        job = batch.job
        assert job is not None
        batch.seg += 1
        if batch.seg >= len(job.segments):
            self._done(batch)
            return
        ran = now - batch.seg_start
        batch.compute += ran
        batch.stage += 1  # split jobs only (preemptive): one segment per stage
        sched = self.scheduler
        stop = sched.on_stage(batch, ran, now)
        if stop:
            sched.requeue(batch, now)
        if self._has_deadlines:
            self._expired(now)
        if stop:
            self._release(batch, now)
            return
        batch.seg_start = now
        self.cpu.submit(job.segments[batch.seg], job.demand, job.gil, self._segment_done, batch,
                        kind=batch.model)

    def _done(self, batch: SimBatch) -> None:
        now = self.env._now
        batch.compute += now - batch.seg_start
        self.area += self.in_system * (now - self._t_area)
        self._t_area = now
        ended = self.scheduler.finish(batch, now, batch.compute)
        self.in_system -= len(ended)
        cb = self.on_complete
        if cb is not None:
            for r in ended:
                cb(r)
        self._release(batch, now)

    def _release(self, batch: SimBatch, now: float) -> None:
        """Free the batch's lock (handing it to the next waiter) and its worker, then dispatch."""
        key = self._warmth(batch)
        self._running[key] -= 1
        self._last_end[key] = now
        if batch.lock is not None:
            waiters = self._locks[batch.lock]
            if waiters:
                self._run(waiters.popleft(), now)
            else:
                self._locks[batch.lock] = None
        self.free.append(batch.worker)
        if self.policy:
            self._dispatch(now)

    # -- results ---------------------------------------------------------------------------------
    def check_finished(self) -> None:
        """Every request must have ended in a status once the environment has drained."""
        left = [r.id for r in self.requests if not r.status]
        if left or len(self.requests) != len(self._times):
            raise RuntimeError(
                f"simulation ended with {len(left)} unfinished and "
                f"{len(self._times) - len(self.requests)} unarrived requests"
            )
        if self.in_system or self.scheduler.inflight:
            raise RuntimeError(
                f"occupancy out of balance: {self.in_system} in system, "
                f"{self.scheduler.inflight} in flight in the scheduler"
            )
