"""The simulated server: one configuration's queue, workers, batching, locks and deadlines.

It is driven by callbacks on a SimPy environment — no per-request SimPy process — so a request
costs a handful of heap operations:

* **arrival** (one timer per arrival, chained): expired requests are dropped from the queue,
  then the request is rejected if the queue is full (``queue_capacity``), otherwise pushed into
  the queue policy (from core/, unchanged) and a free worker is woken;
* **dispatch**: while a worker is free and the queue is not empty, the policy picks the next
  request — or, with ``max_batch > 1``, a batch of the same model (``pop_batch``); the batcher
  waits until the batch is full or the head request has waited ``batch_timeout_ms``;
* **model locks** (threads only): with ``model_lock`` ``per-model`` (or ``global``) a worker
  that took a request whose model is busy waits for the lock, holding its request;
* **execution**: the batch's CPU job runs on the :class:`~servelab.sim.cpu.FluidCpu`; under a
  preemptive policy (MLFQ) it runs stage by stage and after each stage the policy's ``on_run``
  decides whether to stop it at that boundary and ``requeue`` it;
* **deadlines**: a queued request whose deadline passes leaves the queue at its deadline with
  status ``timeout`` — it never waits past it (a request already running finishes).  Removal
  is lazy but exact: expired requests are purged before anything reads the queue (arrivals,
  dispatches), and their records carry the deadline as their end.

The record of every request follows :data:`servelab.core.requests.RECORD_FIELDS`.  The HTTP,
IPC and event-loop costs are part of the job (see :mod:`servelab.sim.service`), so ``enqueue``
is the arrival instant and ``start`` is when a worker took the request from the queue.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

import simpy
from simpy.events import Timeout

from servelab.core.config import ServerConfig
from servelab.core.policies import QueuePolicy
from servelab.core.predictor import RuntimePredictor
from servelab.core.profile import ModelProfile
from servelab.core.requests import Request
from servelab.core.workload import Arrivals
from servelab.sim.cpu import FluidCpu
from servelab.sim.service import Job, ServiceModel


class Run:
    """One batch on one worker, from dispatch to completion or preemption."""

    __slots__ = ("worker", "members", "mp", "job", "seg", "seg_start", "t0", "lock")

    def __init__(self, worker: int, members: list[Request], mp: ModelProfile, lock: Any):
        self.worker = worker
        self.members = members
        self.mp = mp
        self.job: Job | None = None
        self.seg = 0
        self.seg_start = 0.0
        self.t0 = 0.0
        self.lock = lock


class SimServer:
    """One server configuration under one generated workload (see the module docstring)."""

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
        self.preemptive = policy.preemptive
        inline = config.concurrency == "async" and config.offload == "inline"
        self.workers = 1 if inline else config.workers  # inline: the event loop is the worker
        self.free: list[int] = list(range(self.workers - 1, -1, -1))
        self.capacity = config.queue_capacity
        self.max_batch = config.max_batch
        self.batch_timeout = config.batch_timeout_ms / 1e3
        self.batch_wait = self.max_batch > 1 and self.batch_timeout > 0
        self.group: Callable[[Request], Hashable] = (
            (lambda r: (r.model, r.stage)) if self.preemptive else (lambda r: r.model)
        )
        self._counts: dict[Hashable, int] = {}
        self._batch_timer: Timeout | None = None
        self._batch_timer_at = math.inf
        self.locking = config.concurrency == "threads" and config.model_lock != "none"
        self.global_lock = config.model_lock == "global"
        self._locks: dict[Any, deque[Run] | None] = {}  # key -> waiters (None: lock free)
        self._model_index = {m: i for i, m in enumerate(arrivals.models)}
        # Arrivals as plain lists.
        self._times = arrivals.times.tolist()
        names = arrivals.models
        self._model = [names[m] for m in arrivals.model_idx.tolist()]
        self._size = arrivals.input_size.tolist()
        self._prio = [None if p < 0 else p for p in arrivals.priority.tolist()]
        self._deadline = [None if math.isnan(d) else d for d in arrivals.deadline.tolist()]
        self._has_deadlines = any(d is not None for d in self._deadline)
        self.requests: list[Request] = []
        self._dl: list[tuple[float, int, Request]] = []
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
        r.enqueue = now
        if self._dl:
            self._purge(now)
        policy = self.policy
        qlen = len(policy)
        r.queue_len_at_arrival = qlen
        if qlen >= self.capacity:
            r.status = "rejected"
            r.end = now
            return
        self.accepted += 1
        self.area += self.in_system * (now - self._t_area)
        self._t_area = now
        self.in_system += 1
        policy.push(r, now)
        if r.deadline is not None:
            heapq.heappush(self._dl, (r.deadline, i, r))
        if self.batch_wait:
            g = self.group(r)
            self._counts[g] = self._counts.get(g, 0) + 1
        if self.free:
            self._dispatch(now)

    def _purge(self, now: float) -> None:
        """Drop every queued request whose deadline has passed (status timeout, end = deadline)."""
        dl = self._dl
        if dl[0][0] >= now:
            return
        found = False
        while dl and dl[0][0] < now:
            r = heapq.heappop(dl)[2]
            if not r.status and r.worker < 0:
                found = True
        if not found:
            return
        removed = self.policy.remove_if(lambda q: q.deadline is not None and q.deadline < now)
        self._occupancy(0)
        for q in removed:
            q.status = "timeout"
            q.end = q.deadline  # type: ignore[assignment]
            self.in_system -= 1
            self.area -= now - q.end
            if self.batch_wait:
                self._counts[self.group(q)] -= 1

    # -- dispatch --------------------------------------------------------------------------------
    def _dispatch(self, now: float) -> None:
        policy = self.policy
        if self._dl:
            self._purge(now)
        while self.free and policy:
            if self.max_batch == 1:
                members = [policy.pop(now)]
            else:
                if self.batch_wait and not self._batch_ready(now):
                    return
                members = policy.pop_batch(self.max_batch, now, self.group)
                if self.batch_wait:
                    counts = self._counts
                    for r in members:
                        counts[self.group(r)] -= 1
            self._start(self.free.pop(), members, now)

    def _batch_ready(self, now: float) -> bool:
        head = self.policy.peek()
        if self._counts.get(self.group(head), 0) >= self.max_batch:
            return True
        due = head.enqueue + self.batch_timeout
        if now >= due:
            return True
        if due < self._batch_timer_at:
            self._batch_timer_at = due
            timer = Timeout(self.env, due - now)
            timer.callbacks.append(self._on_batch_timer)  # type: ignore[union-attr]
            self._batch_timer = timer
        return False

    def _on_batch_timer(self, event: Any) -> None:
        if event is not self._batch_timer:
            return
        self._batch_timer = None
        self._batch_timer_at = math.inf
        self._dispatch(self.env._now)

    def _start(self, worker: int, members: list[Request], now: float) -> None:
        model = members[0].model
        mp = self.service.model_profiles[self._model_index[model]]
        run = Run(worker, members, mp, ("*" if self.global_lock else model) if self.locking else None)
        b = len(members)
        for r in members:
            if r.start != r.start:  # NaN: first service
                r.start = now
            r.worker = worker
            r.batch_size = b
        if run.lock is not None:
            waiters = self._locks.get(run.lock)
            if waiters is not None:
                waiters.append(run)  # lock busy: wait for it, holding the batch
                return
            self._locks[run.lock] = deque()
        self._run(run, now)

    def _run(self, run: Run, now: float) -> None:
        run.t0 = run.seg_start = now
        members = run.members
        if not self.preemptive and len(members) == 1:
            i = members[0].id
            svc = self.service
            self.cpu.submit(svc.solo_work[i], svc.solo_demand[i], svc.solo_gil[i], self._done, run)
            return
        job = self.service.job(members, run.mp, members[0].stage, split=self.preemptive)
        run.job = job
        run.seg = 0
        self.cpu.submit(job.segments[0], job.demand, job.gil, self._segment_done, run)

    def _segment_done(self, run: Run) -> None:
        now = self.env._now
        job = run.job
        assert job is not None
        run.seg += 1
        ran = now - run.seg_start
        if self.preemptive:
            preempt = False
            for r in run.members:
                r.stage += 1
                if self.policy.on_run(r, ran, now):
                    preempt = True
            if run.seg < len(job.segments) and preempt:
                self._preempt(run, now)
                return
        if run.seg < len(job.segments):
            run.seg_start = now
            self.cpu.submit(job.segments[run.seg], job.demand, job.gil, self._segment_done, run)
            return
        self._done(run)

    def _preempt(self, run: Run, now: float) -> None:
        policy = self.policy
        for r in run.members:
            r.worker = -1
            if r.deadline is not None and now > r.deadline:
                r.status = "timeout"
                r.end = now
                self._occupancy(-1)
                continue
            policy.requeue(r, now)
            if self.batch_wait:
                g = self.group(r)
                self._counts[g] = self._counts.get(g, 0) + 1
            if r.deadline is not None:
                heapq.heappush(self._dl, (r.deadline, r.id, r))
        self._release(run, now)

    def _done(self, run: Run) -> None:
        now = self.env._now
        self.area += self.in_system * (now - self._t_area)
        self._t_area = now
        pred = self.predictor
        for r in run.members:
            r.end = now
            r.status = "ok"
            self.in_system -= 1
            if pred is not None:
                pred.observe(r, r.executed if self.preemptive else now - run.t0)
        self._release(run, now)

    def _release(self, run: Run, now: float) -> None:
        """Free the run's lock (handing it to the next waiter) and its worker, then dispatch."""
        if run.lock is not None:
            waiters = self._locks[run.lock]
            if waiters:
                self._run(waiters.popleft(), now)
            else:
                self._locks[run.lock] = None
        self.free.append(run.worker)
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
