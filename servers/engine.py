"""The live scheduling engine every server shares: the scheduling core
(:mod:`servelab.core.scheduling`) on the real clock, behind one lock.

The core owns admission, the queue policy, batching and the batch timeout, dispatch,
preemption, requeue, deadlines and predictor feedback (the simulator wraps the same object on
simulated time).  This module adds what only a live server has: the lock and condition
variables that executors block on, the reaper thread that answers expired requests at their
deadline, the :class:`Ticket` each request's answer arrives in (with its outcome, :data:`OUTCOMES`; the
API layer maps outcomes to HTTP statuses), Prometheus metrics and the per-request trace.  The three servers differ only in who calls
:meth:`Engine.take` and runs the batch it returns: inference threads, worker-process dispatcher
threads, or coroutines on the event loop (:meth:`Engine.poll`).

Life of a request::

    submit() --rejected (full / draining), timeout (no time)--> refused at once (core: admit)
       | queued in the core
       v
    take()/poll() -- a LiveBatch of one model, after waiting up to batch_timeout to fill
       v
    executor runs the batch stage by stage; after each stage but the last on_stage() asks
       |   the core (lead request decides, every member accounted)
       |-- stop: requeue(batch) -> back in the queue whole, as one entry
       v
    finish(batch, outputs) / fail(batch, ...) -> each request's Ticket completes, trace record

Deadlines: a request whose deadline passes while it waits in the queue ends ``timeout`` at that
moment (the reaper thread sleeps until the core's next deadline); once a request has started it
runs to completion (Triton's semantics: the timeout bounds queueing).  A preempted batch waiting
to resume expires when all its requests' deadlines have passed.

Times are seconds since the engine started (``clock``, by default ``perf_counter``), the shared
record's convention.  A test can inject a fake ``clock`` and ``reaper=False`` and drive the
engine single-threaded (``poll``, ``on_stage``, ``finish``, :meth:`Engine.reap`).
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from servelab.core.config import ServerConfig
from servelab.core.policies import QueuePolicy, make_policy
from servelab.core.predictor import MeanPredictor, RuntimePredictor
from servelab.core.requests import Request
from servelab.core.scheduling import Refusal, Scheduler
from servelab.servers.cpu_sampler import CpuSampler
from servelab.servers.metrics import ServerMetrics
from servelab.servers.runner import split_outputs
from servelab.servers.tickets import OUTCOMES, LiveBatch, ServeError, Ticket
from servelab.servers.trace import TraceBuffer
from servelab.servers.zoo.base import Inputs, StageTimes

log = logging.getLogger(__name__)

class Engine:
    """The scheduling core of one server on the real clock (see the module docstring).

    ``workers`` is how many executors pull from this engine (it only sizes Retry-After).
    All public methods are thread-safe.  ``clock`` returns seconds (monotonic); ``reaper``
    starts the thread that answers expired requests at their deadline (without it, expiry
    happens on the next call and on :meth:`reap`).
    """

    def __init__(
        self,
        config: ServerConfig,
        metrics: ServerMetrics | None = None,
        predictor: RuntimePredictor | None = None,
        policy: QueuePolicy | None = None,
        trace_limit: int = 100_000,
        sample_cpu: bool = True,
        clock: Callable[[], float] = time.perf_counter,
        reaper: bool = True,
    ):
        self.config = config
        self.config_id = config.config_id
        self.metrics = metrics if metrics is not None else ServerMetrics()
        self.predictor = predictor if predictor is not None else MeanPredictor()
        self.core: Scheduler[LiveBatch] = Scheduler.for_config(
            config, LiveBatch, policy=policy, predictor=self.predictor
        )
        self.policy = self.core.policy
        # A learned predictor reads the CPU utilisation from its context: kept current below.
        self._context = getattr(self.predictor, "context", None)
        self.max_batch = config.max_batch
        self.batch_timeout = config.batch_timeout_ms / 1000.0
        self.capacity = config.queue_capacity
        self.workers = config.workers
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._reap = threading.Condition(self._lock)
        self._ids = itertools.count()
        self.records = TraceBuffer(trace_limit)
        self.listeners: list[Callable[[], None]] = []
        self._clock = clock
        self.t0 = clock()
        self.wall_t0 = time.time()
        self.cpu = CpuSampler() if sample_cpu else None
        self._reaper: threading.Thread | None = None
        if reaper:
            self._reaper = threading.Thread(
                target=self._reap_loop, name="deadline-reaper", daemon=True
            )
            self._reaper.start()

    # -- clock and state -------------------------------------------------------------------
    def now(self) -> float:
        return self._clock() - self.t0

    @property
    def accepting(self) -> bool:
        return self.core.accepting

    @property
    def stopped(self) -> bool:
        return self.core.stopped

    @property
    def inflight(self) -> int:
        return self.core.inflight

    @property
    def running(self) -> dict[int, LiveBatch]:
        return self.core.running

    # -- admission ---------------------------------------------------------------------------
    def retry_after(self) -> int:
        """Seconds a refused client should wait: the queue's expected drain time, at least 1."""
        means = list(getattr(self.predictor, "means", dict)().values()) or [0.05]
        est = len(self.policy) * (sum(means) / len(means)) / max(1, self.workers)
        return max(1, math.ceil(est))

    def _refusal_error(self, refusal: Refusal, now: float,
                       timeout_ms: float | None = None) -> ServeError:
        """The error a refused request is answered with (under the lock)."""
        if refusal == "deadline":
            return ServeError(f"deadline of {timeout_ms} ms cannot be met", "timeout")
        if refusal == "draining":
            message = "server is shutting down"
        elif refusal == "full":
            message = f"queue full ({self.capacity} requests waiting)"
        else:
            message = (f"queue backlog: a new request would wait about "
                       f"{1000 * self.core.expected_wait(now):.0f} ms, over the server's "
                       f"{self.config.max_queue_wait_ms:g} ms bound")
        return ServeError(message, "rejected", self.retry_after())

    def refusal(self) -> ServeError | None:
        """What a request arriving now would be refused with — draining, queue full, queue wait
        over its bound — or None: the engine's admission test, for a front door to ask before it
        reads a body (a race with requests finishing only ever errs towards admitting; the
        engine has the last word at :meth:`submit`)."""
        with self._lock:
            now = self.now()
            refusal = self.core.refusal(now)
            error = None if refusal is None else self._refusal_error(refusal, now)
            fired = self._expired(now)
        self._fire(fired)
        return error

    def submit(
        self,
        model: str,
        rows: Sequence[Inputs],
        priority: int | None = None,
        timeout_ms: float | None = None,
        oip_id: str | None = None,
        input_size: int = 0,
        arrival: float | None = None,
        waited: float = 0.0,
    ) -> Request:
        """Admit a request, or raise :class:`ServeError` (``rejected``: queue full or draining;
        ``timeout``: a deadline already passed).  The returned request's ``payload`` is its :class:`Ticket`.
        ``waited``: seconds it already spent in the front end (since its first byte arrived):
        its arrival, and so its deadline and queue-wait bound, count from there."""
        now = self.now()
        arrival = now - waited if arrival is None else arrival
        ticket = Ticket(list(rows), oip_id, self.cpu.value if self.cpu is not None else math.nan)
        req = Request(
            id=next(self._ids), model=model, input_size=input_size, arrival=arrival,
            priority=priority, payload=ticket,
            deadline=None if timeout_ms is None else arrival + timeout_ms / 1000.0,
        )
        error: ServeError | None = None
        with self._lock:
            refusal = self.core.admit(req, now)
            if refusal is not None:
                error = self._refusal_error(refusal, now, timeout_ms)
            else:
                if self._context is not None and ticket.cpu_util == ticket.cpu_util:
                    self._context.cpu_util = ticket.cpu_util / 100.0
                if req.deadline is not None or self.core.max_wait > 0:
                    self._reap.notify()  # a new deadline or queue-wait bound to keep
                self._work.notify_all()
                self.metrics.queue_depth.set(len(self.policy))
                self.metrics.inflight.set(self.core.inflight)
            fired = self._expired(now)
        self._fire(fired)
        if error is not None:
            ticket.outcome, ticket.error = error.outcome, str(error)
            ticket.retry_after = error.retry_after
            self._record(req)
            ticket._fire()
            raise error
        for fn in self.listeners:
            fn()
        return req

    # -- taking work -----------------------------------------------------------------------
    def _try_take(self, now: float, worker: int) -> tuple[LiveBatch | None, float | None]:
        """Under the lock: the next batch, or (None, seconds to wait; None = until notified)."""
        got = self.core.take(now, worker)
        if got is None:
            return None, None
        if isinstance(got, float):
            return None, max(got - now, 0.0)
        if got.preemptions == 0:
            for r in got.requests:
                self.metrics.queue_time.labels(r.model).observe(now - r.enqueue)
        self.metrics.queue_depth.set(len(self.policy))
        return got, 0.0

    def take(self, worker: int = -1, timeout: float | None = None,
             retired: Callable[[], bool] | None = None) -> LiveBatch | None:
        """Block until a batch is ready for ``worker`` (None: engine stopped, ``timeout``, or
        ``retired()`` true -- checked under the engine's lock at every wake-up, so a pool that
        shrinks (:meth:`set_workers`) lets its extra workers go between batches)."""
        end = None if timeout is None else time.perf_counter() + timeout
        while True:
            with self._lock:
                if retired is not None and retired():
                    return None
                now = self.now()
                job, wait = self._try_take(now, worker)
                fired = self._expired(now)
                if not fired and job is None and not self.stopped:
                    if end is not None:
                        left = end - time.perf_counter()
                        if left <= 0:
                            return None
                        wait = left if wait is None else min(wait, left)
                    self._work.wait(wait)
                    continue
            self._fire(fired)
            if job is not None or self.stopped:
                return job

    def poll(self, worker: int = -1) -> tuple[LiveBatch | None, float | None]:
        """Non-blocking :meth:`take` for event-loop executors: (batch, 0.0) or (None, seconds
        to wait before asking again; None = until a listener is called)."""
        with self._lock:
            now = self.now()
            got = self._try_take(now, worker)
            fired = self._expired(now)
        self._fire(fired)
        return got

    # -- preemption --------------------------------------------------------------------------
    def on_stage(self, job: LiveBatch, ran: float) -> bool:
        """Account one stage of ``job`` (not its last); True means stop at this boundary: the
        caller saves the batch's state and calls :meth:`requeue`.  When nothing else waits,
        the batch is demoted in place and keeps running: False."""
        if not self.policy.preemptive:
            return False
        with self._lock:
            now = self.now()
            stop = self.core.on_stage(job, ran, now)
            fired = self._expired(now)
        self._fire(fired)
        return stop

    def requeue(self, job: LiveBatch) -> None:
        """Return a stopped batch to the queue, whole (the core requeues its lead request)."""
        with self._lock:
            now = self.now()
            if job.id in self.core.running:
                self.metrics.preemptions.labels(job.model).inc()
            self.core.requeue(job, now)
            if job.deadline is not None:
                self._reap.notify()
            self._work.notify_all()
            self.metrics.queue_depth.set(len(self.policy))
            fired = self._expired(now)
        self._fire(fired)
        for fn in self.listeners:
            fn()

    # -- completion --------------------------------------------------------------------------
    def split(self, job: LiveBatch) -> list[LiveBatch]:
        """Replace a running batch by one batch per request (a batch whose preprocessing failed
        is retried request by request, so one bad request fails alone)."""
        with self._lock:
            return self.core.split(job)

    def finish(self, job: LiveBatch, rows_out: Sequence[Inputs]) -> None:
        """Answer every request of ``job`` with its rows of ``rows_out``."""
        counts = [len(r.payload.rows) for r in job.requests]
        if len(rows_out) != sum(counts):
            self.fail(job, f"model returned {len(rows_out)} rows for {sum(counts)}")
            return
        per_request = split_outputs(rows_out, counts)
        m = self.metrics
        m.compute_time.labels(job.model).observe(job.times.total)
        m.batch_size.labels(job.model).observe(job.n_rows)
        if job.lock_wait:
            m.lock_wait.labels(job.model).observe(job.lock_wait)
        with self._lock:
            now = self.now()
            ended = self.core.finish(job, now, job.times.total)
            fired = [self._answer(r, job, outputs=out)
                     for r, out in zip(ended, per_request[: len(ended)], strict=True)]
        self._fire(fired)

    def fail(self, job: LiveBatch, message: str, outcome: str = "error") -> None:
        """Answer every request of ``job`` with a failure (``outcome``: ``error``,
        ``bad_input`` or ``unavailable``, see :data:`OUTCOMES`)."""
        if outcome not in OUTCOMES or outcome == "ok":
            raise ValueError(f"not a failure outcome: {outcome!r}")
        with self._lock:
            ended = self.core.fail(job, self.now())
            fired = [self._answer(r, job, message=message, outcome=outcome) for r in ended]
        self._fire(fired)

    def _answer(
        self, r: Request, job: LiveBatch | None, outputs: Inputs | None = None,
        message: str = "", outcome: str | None = None,
    ) -> Ticket:
        """Under the lock: fill in the ticket of a request the core just ended, record it
        (``outcome``: the core's status unless a failure names its own)."""
        t: Ticket = r.payload
        t.outputs, t.error = outputs, message
        t.outcome = outcome if outcome is not None else r.status
        if job is not None:
            r.batch_size = job.n_rows
        self.metrics.inflight.set(self.core.inflight)
        self._record(r, job)
        return t

    @staticmethod
    def _fire(tickets: list[Ticket]) -> None:
        for t in tickets:
            t._fire()

    def _record(self, r: Request, job: LiveBatch | None = None) -> None:
        rec = r.to_record(self.config_id)
        t: Ticket = r.payload
        rec["cpu_util_at_arrival"] = t.cpu_util
        rec["oip_id"] = t.oip_id or ""
        rec["rows"] = len(t.rows)
        times = job.times if job is not None else StageTimes()
        rec["queue_s"] = (r.start - r.enqueue) if r.start == r.start else math.nan
        rec["preprocess_s"] = times.preprocess
        rec["forward_s"] = times.forward
        rec["postprocess_s"] = times.postprocess
        rec["compute_s"] = times.total
        rec["lock_wait_s"] = job.lock_wait if job is not None else 0.0
        rec["ipc_s"] = job.ipc if job is not None else 0.0
        rec["preemptions"] = job.preemptions if job is not None else 0
        rec["error"] = t.error
        self.records.append(rec)

    # -- deadlines ---------------------------------------------------------------------------
    def _expired(self, now: float) -> list[Ticket]:
        """Under the lock: answer every request the core expired by ``now`` — 504 at its
        deadline, 503 when shed at the queue-wait bound.  The record keeps the instant the
        answer went out (``now``), a hair after the deadline."""
        fired = []
        for r, job in self.core.expire(now):
            r.end = now
            if r.status == "rejected":  # shed: it waited the time bound (503, Retry-After)
                r.payload.retry_after = self.retry_after()
                # the bound counts from arrival (the front end's queue included), as the core
                message = (f"shed after {1000 * (now - r.arrival):.0f} ms in the queue (the "
                           f"server's queue-wait bound is {self.config.max_queue_wait_ms:g} ms)")
            else:
                message = f"deadline passed after {1000 * (now - r.enqueue):.0f} ms in the queue"
            fired.append(self._answer(r, job, message=message))
        if fired:
            self.metrics.queue_depth.set(len(self.policy))
        return fired

    def next_deadline(self) -> float | None:
        """The earliest deadline of a queued request (engine time), None if none."""
        with self._lock:
            return self.core.next_deadline()

    def reap(self) -> int:
        """Answer every queued request whose deadline has been reached; how many.  (The reaper
        thread does this on time; a fake-clock driver calls it.)"""
        with self._lock:
            fired = self._expired(self.now())
        self._fire(fired)
        return len(fired)

    def _reap_loop(self) -> None:
        while True:
            with self._lock:
                if self.stopped:
                    return
                now = self.now()
                fired = self._expired(now)
                if not fired:
                    nd = self.core.next_deadline()
                    self._reap.wait(None if nd is None else nd - now + 1e-4)
            self._fire(fired)

    # -- reconfiguration ---------------------------------------------------------------------
    def set_scheduler(self, name: str) -> None:
        """Switch the queue policy at run time (the gateway's in-place change): queued requests
        move into the new policy in arrival order, nothing is dropped or restarted.  The
        configuration (and the ``config_id`` later records carry) follows."""
        policy = make_policy(name, predictor=self.predictor)
        with self._lock:
            self.core.set_policy(policy, self.now())
            self.policy = policy
            self.config = replace(self.config, scheduler=name)
            self.config_id = self.config.config_id
            self._work.notify_all()
        log.info("scheduler set to %s (%s)", name, self.config_id)

    def set_workers(self, workers: int, resize: Callable[[int], None]) -> None:
        """Change the pool size at run time (the gateway's in-place change for a thread pool):
        ``resize(workers)`` adds or retires the executor's workers under the engine's lock;
        retired ones finish the batch they hold and stop at their next :meth:`take`.
        Queued requests stay where they are."""
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        with self._lock:
            resize(workers)
            self.workers = workers
            self.config = replace(self.config, workers=workers)
            self.config_id = self.config.config_id
            self._work.notify_all()
        log.info("workers set to %d (%s)", workers, self.config_id)

    # -- shutdown ----------------------------------------------------------------------------
    def stop_intake(self) -> None:
        """Refuse new requests (503); queued and running ones carry on."""
        with self._lock:
            self.core.stop_intake()
            self._work.notify_all()  # stop waiting for batches to fill

    def drain(self, timeout: float) -> bool:
        """Wait until every admitted request is answered (True) or ``timeout`` passes."""
        end = time.perf_counter() + timeout
        while True:
            with self._lock:
                if self.core.inflight <= 0:
                    return True
            if time.perf_counter() >= end:
                return False
            time.sleep(0.01)

    def close(self, message: str = "server shut down before the request ran") -> None:
        """Stop: fail whatever is still queued or running (``unavailable``) and release the
        executors."""
        with self._lock:
            now = self.now()
            fired = self._expired(now)
            queued, running = self.core.close(now)
            fired += [self._answer(m, job, message=message, outcome="unavailable")
                      for m, job in queued + running]
            self._work.notify_all()
            self._reap.notify_all()
        self._fire(fired)
        if self.cpu is not None:
            self.cpu.close()

    # -- introspection -----------------------------------------------------------------------
    def queue_len(self) -> int:
        with self._lock:
            return len(self.policy)

    def trace(self) -> list[dict[str, Any]]:
        """The per-request records so far (shared schema + extra columns)."""
        with self._lock:
            return self.records.records()

    def trace_columns(self) -> dict[str, Any]:
        """The same records as columns (numpy arrays), for a table."""
        with self._lock:
            return self.records.columns()
