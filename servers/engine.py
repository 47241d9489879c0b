"""The scheduling engine every server shares: admission, the queue policy, deadlines, dynamic
batching, MLFQ preemption and the per-request trace.

The queue is a :mod:`servelab.core.policies` policy (imported, not copied) behind one lock and
condition variable.  The three servers differ only in who calls :meth:`Engine.take` and runs
the batch it returns: inference threads, worker-process dispatcher threads, or coroutines on
the event loop (:meth:`Engine.poll`).

Life of a request::

    submit() --503 full / draining, 504 no time--> rejected at once
       | push (policy.push); deadline registered
       v
    take()/poll() -- pop_batch(max_batch) of one model, after waiting up to batch_timeout for
       |             the batch to fill -> Job
       v
    executor runs the Job stage by stage; after each stage on_stage() asks policy.on_run
       |-- preempt: requeue(job) (policy.requeue of the job's lead request) -> back in the queue
       v
    finish(job, outputs) / fail(job, ...) -> each request's Ticket completes, trace record kept

Deadlines: a request whose deadline passes while it waits in the queue is removed from the queue
at that moment (a reaper thread sleeps until the earliest deadline) and answered 504; once a
request has started it runs to completion (Triton's semantics: the timeout bounds queueing).
A preempted batch waiting to resume expires when all its requests' deadlines have passed.

Times are seconds since the engine started (``perf_counter``), the shared record's convention.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from servelab.core.config import ServerConfig
from servelab.core.policies import QueuePolicy, make_policy
from servelab.core.predictor import MeanPredictor, RuntimePredictor
from servelab.core.requests import Request
from servelab.servers.metrics import ServerMetrics
from servelab.servers.runner import split_outputs
from servelab.servers.zoo.base import Inputs, StageTimes

log = logging.getLogger(__name__)

HTTP_STATUS = {"ok": 200, "rejected": 503, "timeout": 504, "error": 500}


class ServeError(Exception):
    """A request the engine refuses or fails: ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass(eq=False)
class Ticket:
    """A request's rows, and the place its answer arrives (``Request.payload``)."""

    rows: list[Inputs]
    oip_id: str | None = None
    cpu_util: float = math.nan
    outputs: Inputs | None = None
    error: str = ""
    http_status: int = 0
    retry_after: int | None = None
    resumed: Job | None = None
    """Set while this request is the queue entry of a preempted batch."""
    extra: dict[str, float] = field(default_factory=dict)
    _event: threading.Event = field(default_factory=threading.Event)
    _callbacks: list[Callable[[Ticket], None]] = field(default_factory=list)
    _cb_lock: threading.Lock = field(default_factory=threading.Lock)
    _fired: bool = False

    @property
    def done(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)

    def add_done_callback(self, fn: Callable[[Ticket], None]) -> None:
        """Call ``fn(ticket)`` when done (at once if it already is), from the completing thread."""
        with self._cb_lock:
            if not self._fired:
                self._callbacks.append(fn)
                return
        fn(self)

    def _fire(self) -> None:
        with self._cb_lock:
            self._fired = True
            callbacks, self._callbacks = self._callbacks, []
        self._event.set()
        for fn in callbacks:
            try:
                fn(self)
            except Exception:  # pragma: no cover - a callback must not break the engine
                log.exception("ticket callback failed")


@dataclass(eq=False)
class Job:
    """A batch of requests of one model, popped together and executed together."""

    id: int
    model: str
    requests: list[Request]
    worker: int = -1
    # Where a preempted batch stands (batch, next stage, state); ``work`` is the executor's own
    # object for it when the executor lives in this process.
    work: Any = None
    batch: Any = None
    stage: int = 0
    state: Any = None
    times: StageTimes = field(default_factory=StageTimes)
    lock_wait: float = 0.0
    ipc: float = 0.0
    preemptions: int = 0

    @property
    def lead(self) -> Request:
        return self.requests[0]

    @property
    def started(self) -> bool:
        return self.work is not None or self.batch is not None

    def rows(self) -> list[Inputs]:
        return [row for r in self.requests for row in r.payload.rows]

    @property
    def n_rows(self) -> int:
        return sum(len(r.payload.rows) for r in self.requests)

    @property
    def deadline(self) -> float | None:
        ds = [r.deadline for r in self.requests]
        return None if any(d is None for d in ds) else max(ds)  # type: ignore[type-var]


def _group(r: Request) -> Hashable:
    """Batching key: same model, and never merge into a preempted batch."""
    return r.model if r.payload.resumed is None else ("resumed", id(r))


class CpuSampler:
    """Whole-machine CPU utilisation (0-100), sampled every ``interval`` seconds in a daemon
    thread, so that reading it at each request's arrival costs nothing."""

    def __init__(self, interval: float = 0.1):
        import psutil

        self._psutil = psutil
        self.interval = interval
        self.value = math.nan
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
        psutil.cpu_percent(interval=None)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.value = self._psutil.cpu_percent(interval=None)

    def close(self) -> None:
        self._stop.set()


class Engine:
    """Admission, queueing, batching, deadlines and preemption for one server.

    ``workers`` is how many executors pull from this engine (it only sizes Retry-After).
    All public methods are thread-safe.
    """

    def __init__(
        self,
        config: ServerConfig,
        metrics: ServerMetrics | None = None,
        predictor: RuntimePredictor | None = None,
        policy: QueuePolicy | None = None,
        trace_limit: int = 200_000,
        sample_cpu: bool = True,
    ):
        self.config = config
        self.config_id = config.config_id
        self.metrics = metrics if metrics is not None else ServerMetrics()
        self.predictor = predictor if predictor is not None else MeanPredictor()
        self.policy = policy if policy is not None else make_policy(
            config.scheduler, predictor=self.predictor
        )
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
        self._job_ids = itertools.count()
        self._fresh: Counter[str] = Counter()
        self._deadlines: list[tuple[float, int, Request]] = []
        self._seq = itertools.count()
        self.inflight = 0
        self.running: dict[int, Job] = {}
        self.accepting = True
        self.stopped = False
        self.records: deque[dict[str, Any]] = deque(maxlen=trace_limit)
        self.listeners: list[Callable[[], None]] = []
        self.t0 = time.perf_counter()
        self.wall_t0 = time.time()
        self.cpu = CpuSampler() if sample_cpu else None
        self._reaper = threading.Thread(target=self._reap_loop, name="deadline-reaper", daemon=True)
        self._reaper.start()

    # -- clock -----------------------------------------------------------------------------
    def now(self) -> float:
        return time.perf_counter() - self.t0

    # -- admission ---------------------------------------------------------------------------
    def retry_after(self) -> int:
        """Seconds a refused client should wait: the queue's expected drain time, at least 1."""
        means = list(getattr(self.predictor, "means", dict)().values()) or [0.05]
        est = len(self.policy) * (sum(means) / len(means)) / max(1, self.workers)
        return max(1, math.ceil(est))

    def submit(
        self,
        model: str,
        rows: Sequence[Inputs],
        priority: int | None = None,
        timeout_ms: float | None = None,
        oip_id: str | None = None,
        input_size: int = 0,
        arrival: float | None = None,
    ) -> Request:
        """Admit a request, or raise :class:`ServeError` (503 queue full or draining; 504 a
        deadline already passed).  The returned request's ``payload`` is its :class:`Ticket`."""
        now = self.now()
        arrival = now if arrival is None else arrival
        ticket = Ticket(list(rows), oip_id, self.cpu.value if self.cpu is not None else math.nan)
        req = Request(
            id=next(self._ids), model=model, input_size=input_size, arrival=arrival,
            priority=priority, payload=ticket,
            deadline=None if timeout_ms is None else arrival + timeout_ms / 1000.0,
        )
        error: ServeError | None = None
        with self._lock:
            req.queue_len_at_arrival = len(self.policy)
            if not self.accepting:
                error = ServeError("server is shutting down", 503, self.retry_after())
            elif req.deadline is not None and req.deadline <= now:
                error = ServeError(f"deadline of {timeout_ms} ms cannot be met", 504)
            elif len(self.policy) >= self.capacity:
                error = ServeError(
                    f"queue full ({self.capacity} requests waiting)", 503, self.retry_after()
                )
            else:
                req.enqueue = now
                if self._context is not None and ticket.cpu_util == ticket.cpu_util:
                    self._context.cpu_util = ticket.cpu_util / 100.0
                self.policy.push(req, now)
                self._fresh[model] += 1
                self.inflight += 1
                if req.deadline is not None:
                    heapq.heappush(self._deadlines, (req.deadline, next(self._seq), req))
                    self._reap.notify()
                self._work.notify_all()
                self.metrics.queue_depth.set(len(self.policy))
                self.metrics.inflight.set(self.inflight)
        if error is not None:
            req.enqueue = req.start = req.end = now
            req.status = "rejected" if error.status == 503 else "timeout"
            ticket.http_status, ticket.error = error.status, str(error)
            ticket.retry_after = error.retry_after
            self._record(req)
            ticket._fire()
            raise error
        for fn in self.listeners:
            fn()
        return req

    # -- taking work -----------------------------------------------------------------------
    def _try_take(self, now: float, worker: int) -> tuple[Job | None, float | None]:
        """Under the lock: the next job, or (None, seconds to wait; None = until notified)."""
        if self.stopped or not self.policy:
            return None, None
        head = self.policy.peek()
        if head.payload.resumed is None and self.max_batch > 1 and self.batch_timeout > 0:
            due = head.enqueue + self.batch_timeout
            if self._fresh[head.model] < self.max_batch and now < due and self.accepting:
                return None, due - now
        reqs = self.policy.pop_batch(self.max_batch, now, group=_group)
        lead = reqs[0]
        job = lead.payload.resumed
        if job is not None:
            lead.payload.resumed = None
        else:
            job = Job(next(self._job_ids), lead.model, reqs)
            self._fresh[lead.model] -= len(reqs)
            for r in reqs:
                r.start = now
                self.metrics.queue_time.labels(r.model).observe(now - r.enqueue)
        job.worker = worker
        self.running[job.id] = job
        self.metrics.queue_depth.set(len(self.policy))
        return job, 0.0

    def take(self, worker: int = -1, timeout: float | None = None) -> Job | None:
        """Block until a job is ready for ``worker`` (None: engine stopped, or ``timeout``)."""
        end = None if timeout is None else time.perf_counter() + timeout
        with self._lock:
            while True:
                now = self.now()
                job, wait = self._try_take(now, worker)
                if job is not None or self.stopped:
                    return job
                if end is not None:
                    left = end - time.perf_counter()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._work.wait(wait)

    def poll(self, worker: int = -1) -> tuple[Job | None, float | None]:
        """Non-blocking :meth:`take` for event-loop executors: (job, None) or (None, seconds
        to wait before asking again; None = until a listener is called)."""
        with self._lock:
            return self._try_take(self.now(), worker)

    # -- preemption --------------------------------------------------------------------------
    def on_stage(self, job: Job, ran: float) -> bool:
        """Account one stage of ``job``; True means stop at this boundary: the caller saves
        the job's state and calls :meth:`requeue`.  When nothing else waits, the job is
        demoted in place (requeued and popped at once) and keeps running: False."""
        if not self.policy.preemptive:
            return False
        with self._lock:
            now = self.now()
            preempt = self.policy.on_run(job.lead, ran, now)
            for r in job.requests[1:]:
                self.policy.on_run(r, ran, now)
            if not preempt:
                return False
            if not self.policy or self.stopped:
                self.policy.requeue(job.lead, now)
                popped = self.policy.pop(now)
                assert popped is job.lead
                self._sync_levels(job)
                return False
            return True

    def _sync_levels(self, job: Job) -> None:
        for r in job.requests[1:]:
            r.level, r.level_executed = job.lead.level, job.lead.level_executed

    def requeue(self, job: Job) -> None:
        """Return a preempted job to the queue (policy.requeue of its lead request)."""
        with self._lock:
            now = self.now()
            self.running.pop(job.id, None)
            job.preemptions += 1
            self.metrics.preemptions.labels(job.model).inc()
            job.lead.payload.resumed = job
            self.policy.requeue(job.lead, now)
            self._sync_levels(job)
            d = job.deadline
            if d is not None:
                heapq.heappush(self._deadlines, (d, next(self._seq), job.lead))
                self._reap.notify()
            self._work.notify_all()
            self.metrics.queue_depth.set(len(self.policy))
        for fn in self.listeners:
            fn()

    # -- completion --------------------------------------------------------------------------
    def split(self, job: Job) -> list[Job]:
        """Replace a running batch by one job per request (a batch whose preprocessing failed
        is retried request by request, so one bad request fails alone)."""
        with self._lock:
            self.running.pop(job.id, None)
            jobs = []
            for r in job.requests:
                j = Job(next(self._job_ids), job.model, [r], worker=job.worker)
                self.running[j.id] = j
                jobs.append(j)
            return jobs

    def finish(self, job: Job, rows_out: Sequence[Inputs]) -> None:
        """Answer every request of ``job`` with its rows of ``rows_out``."""
        counts = [len(r.payload.rows) for r in job.requests]
        if len(rows_out) != sum(counts):
            self.fail(job, f"model returned {len(rows_out)} rows for {sum(counts)}", 500)
            return
        per_request = split_outputs(rows_out, counts)
        m = self.metrics
        m.compute_time.labels(job.model).observe(job.times.total)
        m.batch_size.labels(job.model).observe(job.n_rows)
        if job.lock_wait:
            m.lock_wait.labels(job.model).observe(job.lock_wait)
        fired = []
        with self._lock:
            now = self.now()
            self.running.pop(job.id, None)
            for r, outputs in zip(job.requests, per_request, strict=True):
                self.predictor.observe(r, job.times.total)
                if self._complete(r, job, now, "ok", outputs=outputs):
                    fired.append(r.payload)
        for t in fired:
            t._fire()

    def fail(self, job: Job, message: str, status: int = 500) -> None:
        """Answer every request of ``job`` with an error (``status`` 4xx/5xx)."""
        fired = []
        with self._lock:
            now = self.now()
            self.running.pop(job.id, None)
            for r in job.requests:
                if self._complete(r, job, now, "error", message=message, http_status=status):
                    fired.append(r.payload)
        for t in fired:
            t._fire()

    def _complete(
        self, r: Request, job: Job | None, now: float, status: str, outputs: Inputs | None = None,
        message: str = "", http_status: int | None = None,
    ) -> bool:
        """Under the lock: end one admitted request (once).  True if it was still open."""
        t: Ticket = r.payload
        if t.done or r.status:
            return False
        r.end = now
        r.status = status
        t.outputs, t.error = outputs, message
        t.http_status = http_status if http_status is not None else HTTP_STATUS[status]
        if job is not None:
            r.worker, r.batch_size = job.worker, job.n_rows
        self.inflight -= 1
        self.metrics.inflight.set(self.inflight)
        self._record(r, job)
        return True

    def _record(self, r: Request, job: Job | None = None) -> None:
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
    def _expire(self, now: float) -> list[Ticket]:
        """Under the lock: remove every queued request whose deadline has passed."""
        if not self._deadlines or self._deadlines[0][0] > now:
            return []

        def expired(r: Request) -> bool:
            job = r.payload.resumed
            if job is None:
                return r.expired(now)
            d = job.deadline
            return d is not None and now > d

        while self._deadlines and self._deadlines[0][0] <= now:
            heapq.heappop(self._deadlines)
        removed = self.policy.remove_if(expired)
        fired = []
        for r in removed:
            job = r.payload.resumed
            members = job.requests if job is not None else [r]
            if job is None:
                self._fresh[r.model] -= 1
            for m in members:
                if self._complete(
                    m, job, now, "timeout",
                    message=f"deadline passed after {1000 * (now - m.enqueue):.0f} ms in the queue",
                ):
                    fired.append(m.payload)
        if removed:
            self.metrics.queue_depth.set(len(self.policy))
        return fired

    def _reap_loop(self) -> None:
        while True:
            with self._lock:
                if self.stopped:
                    return
                now = self.now()
                fired = self._expire(now)
                if not fired:
                    wait = (self._deadlines[0][0] - now + 1e-4) if self._deadlines else None
                    self._reap.wait(wait)
            for t in fired:
                t._fire()

    # -- shutdown ----------------------------------------------------------------------------
    def stop_intake(self) -> None:
        """Refuse new requests (503); queued and running ones carry on."""
        with self._lock:
            self.accepting = False
            self._work.notify_all()  # stop waiting for batches to fill

    def drain(self, timeout: float) -> bool:
        """Wait until every admitted request is answered (True) or ``timeout`` passes."""
        end = time.perf_counter() + timeout
        while True:
            with self._lock:
                if self.inflight <= 0:
                    return True
            if time.perf_counter() >= end:
                return False
            time.sleep(0.01)

    def close(self, message: str = "server shut down before the request ran") -> None:
        """Stop: fail whatever is still queued or running (503) and release the executors."""
        fired = []
        with self._lock:
            self.accepting = False
            self.stopped = True
            now = self.now()
            for r in self.policy.remove_if(lambda r: True):
                job = r.payload.resumed
                for m in job.requests if job is not None else [r]:
                    if self._complete(m, job, now, "rejected", message=message):
                        fired.append(m.payload)
            for job in list(self.running.values()):
                for m in job.requests:
                    if self._complete(m, job, now, "error", message=message, http_status=503):
                        fired.append(m.payload)
            self.running.clear()
            self._work.notify_all()
            self._reap.notify_all()
        for t in fired:
            t._fire()
        if self.cpu is not None:
            self.cpu.close()

    # -- introspection -----------------------------------------------------------------------
    def queue_len(self) -> int:
        with self._lock:
            return len(self.policy)

    def trace(self) -> list[dict[str, Any]]:
        """The per-request records so far (shared schema + extra columns)."""
        with self._lock:
            return list(self.records)
