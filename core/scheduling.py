"""The scheduling core: one server's admission, queue, batching, dispatch, preemption,
deadlines and completion — a plain object with no clock, no I/O and no threads.

Both drivers wrap this one object (the design's rule 1, "one policy, two clocks"): the live
engine (:mod:`servelab.servers.engine`) with a lock, condition variables and a reaper thread on
the real clock, the simulator (:mod:`servelab.sim.server`) with SimPy timers on simulated time.
Every method takes ``now`` (seconds, the driver's clock); the core never reads a clock, never
waits and never calls back.  What it models, exactly:

* **Admission** (:meth:`Scheduler.admit`): a request is refused — a :data:`Refusal`, not an
  HTTP status — when intake is closed (``"draining"``), when its deadline has already been
  reached (``"deadline"``), when ``capacity`` entries are queued (``"full"``), or, with a
  ``max_wait``, when a newcomer's expected wait is over ``max_wait`` (``"backlog"``), checked
  in that order.  Otherwise it is pushed into the queue policy (:mod:`servelab.core.policies`).
  :meth:`Scheduler.refusal` asks the same question without a request (a front door deciding
  before it reads the body).
* **Time-bounded queueing** (``max_wait`` > 0, Triton's ``max_queue_delay`` with REJECT): a
  fresh request that has been in the server ``max_wait`` since it *arrived* (the front end's
  time counts: ``arrival``, not ``enqueue``) without starting is shed — it ends ``rejected``
  at ``arrival + max_wait`` — so no request that runs has waited longer than the bound, and
  under any overload the queue holds only what the workers drain within it.  One that reaches
  admission already that late is refused there.  Admission refuses
  what would be shed anyway: a newcomer's expected wait is the recent time from arrival to
  admission (what a front end's own queue adds; smoothed over the last few admissions) plus
  the queue's length times the time per entry the queue has been draining at (each dispatch:
  the time since the previous one, or since the queue became non-empty, over the entries it
  took — smoothed over the last few dispatches; no service-time model, and a full batch counts
  as the many entries it drains).
* **Queue entries**: the policy holds requests.  A fresh request is one entry; a preempted
  batch waiting to resume is *one* entry too, represented by its lead request (the policy
  orders, demotes and boosts the lead; the other members copy its level when it is requeued).
  Queue length and capacity count entries.
* **Batch formation** (:meth:`Scheduler.take`): with ``max_batch > 1`` the next entry is popped
  with up to ``max_batch - 1`` more fresh requests of the same model, in policy order
  (``pop_batch``); a resumed batch is never merged with anything.  With a ``batch_timeout``, a
  fresh head whose model has fewer than ``max_batch`` fresh requests queued waits until
  ``head.enqueue + batch_timeout`` (not while draining): ``take`` then returns the time to ask
  again — that instant, or the next queued deadline if one comes first.
* **Dispatch**: ``take(now, worker)`` returns a :class:`Batch` bound to ``worker``; a fresh
  request's ``start`` is its first dispatch, a resumed batch keeps its members' starts.
* **Stage boundaries and preemption** (:meth:`Scheduler.on_stage`, asked after every stage
  but the last, preemptive policies only): every member's execution is accounted
  (``policy.on_run``) and the *lead's* answer decides.  A batch told to stop while nothing
  else is queued is demoted in place (requeued and popped at once) and keeps running;
  otherwise the driver stops it at this boundary and calls :meth:`Scheduler.requeue`, which
  puts the whole batch back as one entry.
* **Deadlines**: a queued request expires when its deadline is reached (``deadline <= now``);
  a queued preempted batch when every member's deadline is reached (a batch with a member
  without a deadline never expires); a batch preempted after that point expires at the
  boundary.  A request that is running is never cut short.  Expiry is exact whoever drives
  the clock: :meth:`admit`, :meth:`take` and :meth:`on_stage` first remove every entry whose
  deadline has been reached, so no decision ever sees one, and an expired request's ``end``
  is the instant its deadline was reached (or the boundary), not the instant the driver
  noticed.  :meth:`expire` hands the expired requests to the driver (the simulator calls it
  lazily, the engine's reaper at :meth:`next_deadline`).
* **Completion** (:meth:`finish` / :meth:`fail`): each member ends with status ``ok`` /
  ``error`` at ``now``; ``finish`` feeds the predictor every member with the batch's compute
  time (what a live server measures: the batch ran as one).

Request fields the core writes: ``enqueue``, ``queue_len_at_arrival``, ``start``, ``worker``
(the last worker that ran it), ``end``, ``status`` and the policies' preemption state.  The
drivers add what they measure (batch size in rows, stage times, lock waits, the trace).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from servelab.core.config import ServerConfig
from servelab.core.policies import QueuePolicy, make_policy
from servelab.core.predictor import RuntimePredictor
from servelab.core.requests import Request

Refusal = Literal["draining", "deadline", "full", "backlog"]
"""Why :meth:`Scheduler.admit` refused a request."""

DRAIN_SMOOTHING = 0.2
"""Weight of each dispatch in the drain-rate estimate behind time-bounded admission (the last
few dispatches: a fraction of a second under load)."""

REFUSAL_STATUS: dict[str, str] = {
    "draining": "rejected", "full": "rejected", "backlog": "rejected", "deadline": "timeout",
}
"""The record status a refused request ends with."""


@dataclass(eq=False, slots=True)
class Batch:
    """Requests of one model dispatched together and executed as one: the unit of work.

    Drivers subclass it to carry their execution state (all extra fields need defaults: the
    core builds batches as ``batch_type(id, model, requests)``).
    """

    id: int
    model: str
    requests: list[Request]
    worker: int = -1
    preemptions: int = 0

    @property
    def lead(self) -> Request:
        """The request that represents the batch in the queue and decides its preemption."""
        return self.requests[0]

    @property
    def deadline(self) -> float | None:
        """When the batch expires while preempted: the latest member deadline (None if any
        member has none)."""
        latest = -float("inf")
        for r in self.requests:
            if r.deadline is None:
                return None
            if r.deadline > latest:
                latest = r.deadline
        return latest


B = TypeVar("B", bound=Batch)


class Scheduler(Generic[B]):
    """One server's scheduling state (see the module docstring for the rules).

    ``batch_type(id, model, requests)`` builds the batches (a :class:`Batch` subclass);
    ``predictor`` gets every completion (None: no feedback); ``batch_timeout`` is in seconds.
    """

    def __init__(
        self,
        policy: QueuePolicy,
        batch_type: Callable[[int, str, list[Request]], B],
        *,
        predictor: RuntimePredictor | None = None,
        max_batch: int = 1,
        batch_timeout: float = 0.0,
        capacity: int = 256,
        max_wait: float = 0.0,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if batch_timeout < 0:
            raise ValueError(f"batch_timeout must be >= 0 seconds, got {batch_timeout}")
        if max_wait < 0:
            raise ValueError(f"max_wait must be >= 0 seconds, got {max_wait}")
        self.policy = policy
        self.predictor = predictor
        self.max_batch = max_batch
        self.batch_timeout = batch_timeout
        self.capacity = capacity
        self.max_wait = max_wait
        self._arrived: deque[Request] = deque()  # with a max_wait: fresh ones, in order
        self._drain = math.nan  # with a max_wait: seconds per entry dispatched, smoothed
        self._front = 0.0  # with a max_wait: arrival-to-admission time (a front end), smoothed
        self._front_at = -math.inf  # when it was last measured
        self._last_take = -math.inf
        self._backlog_since = math.inf  # when the queue last became non-empty
        self.accepting = True
        self.stopped = False
        self.inflight = 0
        """Requests admitted and not yet ended (queued, preempted or running)."""
        self.running: dict[int, B] = {}
        """Dispatched batches by id, until they finish, fail, split or are requeued."""
        self._new = batch_type
        self._ids = itertools.count()
        self._seq = itertools.count()
        self._fill = max_batch > 1 and batch_timeout > 0
        self._fresh: dict[str, int] = {}  # fresh queued requests per model (only with _fill)
        self._resumed: dict[int, B] = {}  # id(lead request) -> its preempted batch, while queued
        self._deadlines: list[tuple[float, int, Request, B | None]] = []
        self._expired: list[tuple[Request, B | None]] = []
        resumed = self._resumed
        self._group: Callable[[Request], Hashable] = (
            lambda r: r if id(r) in resumed else r.model  # a resumed lead is its own group
        )

    @classmethod
    def for_config(
        cls,
        config: ServerConfig,
        batch_type: Callable[[int, str, list[Request]], B],
        policy: QueuePolicy | None = None,
        predictor: RuntimePredictor | None = None,
    ) -> Scheduler[B]:
        """The scheduler a :class:`ServerConfig` describes (its policy built by name unless
        given)."""
        if policy is None:
            policy = make_policy(config.scheduler, predictor=predictor)
        return cls(
            policy, batch_type, predictor=predictor, max_batch=config.max_batch,
            batch_timeout=config.batch_timeout_ms / 1000.0, capacity=config.queue_capacity,
            max_wait=config.max_queue_wait_ms / 1000.0,
        )

    # -- occupancy -------------------------------------------------------------------------
    @property
    def queued(self) -> int:
        """Queue entries (a preempted batch counts once)."""
        return len(self.policy)

    def _oldest(self) -> Request | None:
        """The oldest fresh request still queued (tracked with a max_wait only)."""
        arrived = self._arrived
        while arrived:
            r = arrived[0]
            if self._live(r, None):
                return r
            arrived.popleft()
        return None

    def oldest_wait(self, now: float) -> float:
        """How long the oldest fresh request still queued has waited (0 with none queued).
        Tracked only with a ``max_wait``: without one this is always 0."""
        head = self._oldest()
        return 0.0 if head is None else now - head.arrival

    def expected_wait(self, now: float) -> float:
        """A newcomer's expected wait before it starts (tracked with a ``max_wait``; else 0):
        the recent time from arrival to admission (a front end's queue; forgotten once no
        request has reached admission for ``max_wait``), plus the queue's
        length times the smoothed time per entry dispatched while the queue was backlogged
        (no dispatch yet: 0 — errs towards admitting)."""
        d = self._drain
        queue = 0.0 if d != d else len(self.policy) * d
        # A front-end delay last seen over a bound ago is stale: with the door shut that long,
        # what was in the front end has reached admission (or the client) since.
        return queue + (self._front if now - self._front_at < self.max_wait else 0.0)

    def _dispatched(self, n: int, now: float) -> None:
        """Learn the drain rate from a dispatch of ``n`` entries at ``now``: the time since
        the previous dispatch, or since the queue became non-empty if later, per entry."""
        since = self._backlog_since if self._backlog_since > self._last_take else self._last_take
        sample = (now - since) / n
        d = self._drain
        self._drain = sample if d != d else d + DRAIN_SMOOTHING * (sample - d)
        self._last_take = now
        if not self.policy:
            self._backlog_since = math.inf

    def _due(self, now: float) -> bool:
        """Whether a queued entry may have expired or is to be shed by ``now``."""
        dl = self._deadlines
        if dl and dl[0][0] <= now:
            return True
        arrived = self._arrived
        return bool(arrived) and arrived[0].arrival + self.max_wait <= now

    # -- admission -------------------------------------------------------------------------
    def refusal(self, now: float) -> Refusal | None:
        """Why a request arriving at ``now`` would be refused before its own deadline is
        looked at (draining, full, backlog), or None: the admission test a front door asks
        before it reads a body."""
        if self._due(now):
            self._purge(now)
        if not self.accepting:
            return "draining"
        if len(self.policy) >= self.capacity:
            return "full"
        if self.max_wait > 0 and self.expected_wait(now) > self.max_wait:
            return "backlog"
        return None

    def admit(self, request: Request, now: float) -> Refusal | None:
        """Queue ``request`` (None) or refuse it (it ends at ``now`` with
        :data:`REFUSAL_STATUS`)."""
        if self._due(now):
            self._purge(now)
        policy = self.policy
        n = len(policy)
        request.queue_len_at_arrival = n
        request.enqueue = now
        if self.max_wait > 0:  # every request that reaches admission measures the front end
            self._front += DRAIN_SMOOTHING * (now - request.arrival - self._front)
            self._front_at = now
        refusal: Refusal | None
        if not self.accepting:
            refusal = "draining"
        elif request.deadline is not None and request.deadline <= now:
            refusal = "deadline"
        elif n >= self.capacity:
            refusal = "full"
        elif self.max_wait > 0 and (request.arrival + self.max_wait <= now
                                    or self.expected_wait(now) > self.max_wait):
            refusal = "backlog"  # it would be shed: its wait so far, or the queue ahead
        else:
            refusal = None
        if refusal is None:
            policy.push(request, now)
            self.inflight += 1
            if self.max_wait > 0:
                if n == 0:
                    self._backlog_since = now
                self._arrived.append(request)
            if self._fill:
                self._fresh[request.model] = self._fresh.get(request.model, 0) + 1
            if request.deadline is not None:
                heapq.heappush(
                    self._deadlines, (request.deadline, next(self._seq), request, None)
                )
            return None
        request.status = REFUSAL_STATUS[refusal]
        request.end = now
        return refusal

    def stop_intake(self) -> None:
        """Refuse every later request ("draining"); queued ones still run, batches no longer
        wait to fill."""
        self.accepting = False

    def set_policy(self, policy: QueuePolicy, now: float) -> None:
        """Order the queue by ``policy`` from now on: every queued entry (fresh requests and
        preempted batches alike) moves into it in arrival order, so ties keep first-come
        first-served.  Running batches are untouched; a preemptive policy takes effect at their
        next stage boundary, a non-preemptive one lets them run to completion."""
        moved = self.policy.remove_if(lambda r: True)
        moved.sort(key=lambda r: (r.enqueue, r.id))
        for r in moved:
            policy.push(r, now)
        self.policy = policy

    # -- dispatch --------------------------------------------------------------------------
    def take(self, now: float, worker: int = -1) -> B | float | None:
        """The next batch, now bound to ``worker``; or the time to ask again (a batch is
        waiting to fill); or None (nothing queued, or stopped: ask again after a change)."""
        if self._due(now):
            self._purge(now)
        policy = self.policy
        if self.stopped or not policy:
            return None
        if self._fill and self.accepting:
            head = policy.peek()
            if id(head) not in self._resumed:
                due = head.enqueue + self.batch_timeout
                if now < due and self._fresh[head.model] < self.max_batch:
                    nd = self.next_deadline()
                    return due if nd is None or nd >= due else nd
        if self.max_batch == 1:
            reqs = [policy.pop(now)]
        else:
            reqs = policy.pop_batch(self.max_batch, now, self._group)
        lead = reqs[0]
        batch = self._resumed.pop(id(lead), None) if self._resumed else None
        if self.max_wait > 0:
            self._dispatched(1 if batch is not None else len(reqs), now)
        if batch is None:
            batch = self._new(next(self._ids), lead.model, reqs)
            if self._fill:
                self._fresh[lead.model] -= len(reqs)
            for r in reqs:
                r.start = now
        batch.worker = worker
        for r in batch.requests:
            r.worker = worker
        self.running[batch.id] = batch
        return batch

    # -- stage boundaries ------------------------------------------------------------------
    def on_stage(self, batch: B, ran: float, now: float) -> bool:
        """Account a stage of ``ran`` seconds of ``batch`` (not its last); True: stop at this
        boundary and :meth:`requeue` it.  When nothing else is queued the batch is demoted in
        place and keeps running (False)."""
        policy = self.policy
        if not policy.preemptive:
            return False
        if self._due(now):
            self._purge(now)
        reqs = batch.requests
        preempt = policy.on_run(reqs[0], ran, now)
        for r in reqs[1:]:
            policy.on_run(r, ran, now)
        if not preempt:
            return False
        if policy and not self.stopped:
            return True
        lead = reqs[0]
        policy.requeue(lead, now)
        popped = policy.pop(now)
        assert popped is lead, "demoting in place must pop the batch straight back"
        self._sync_levels(batch)
        return False

    def requeue(self, batch: B, now: float) -> None:
        """Put a stopped batch back in the queue, whole, as one entry (``policy.requeue`` of
        its lead).  A batch whose deadline has already been reached expires here instead; a
        batch that no longer runs (ended by :meth:`close`) is ignored."""
        if self.running.pop(batch.id, None) is None:
            return
        batch.preemptions += 1
        d = batch.deadline
        if d is not None and d <= now:
            for r in batch.requests:
                r.status, r.end = "timeout", now
                self._expired.append((r, batch))
            self.inflight -= len(batch.requests)
            return
        lead = batch.requests[0]
        self._resumed[id(lead)] = batch
        if self.max_wait > 0 and not self.policy:
            self._backlog_since = now
        self.policy.requeue(lead, now)
        self._sync_levels(batch)
        if d is not None:
            heapq.heappush(self._deadlines, (d, next(self._seq), lead, batch))

    @staticmethod
    def _sync_levels(batch: Batch) -> None:
        lead = batch.requests[0]
        for r in batch.requests[1:]:
            r.level, r.level_executed = lead.level, lead.level_executed

    # -- completion ------------------------------------------------------------------------
    def finish(self, batch: B, now: float, compute: float) -> list[Request]:
        """End every member ``ok`` at ``now``; the predictor observes each with the batch's
        ``compute`` seconds.  Returns the requests ended ([] if ``batch`` no longer runs)."""
        if self.running.pop(batch.id, None) is None:
            return []
        reqs = batch.requests
        pred = self.predictor
        for r in reqs:
            r.end = now
            r.status = "ok"
            if pred is not None:
                pred.observe(r, compute)
        self.inflight -= len(reqs)
        return reqs

    def fail(self, batch: B, now: float) -> list[Request]:
        """End every member ``error`` at ``now``; returns them ([] if it no longer runs)."""
        if self.running.pop(batch.id, None) is None:
            return []
        for r in batch.requests:
            r.end = now
            r.status = "error"
        self.inflight -= len(batch.requests)
        return batch.requests

    def split(self, batch: B) -> list[B]:
        """Replace a running batch by one running batch per request, on the same worker."""
        self.running.pop(batch.id, None)
        out = []
        for r in batch.requests:
            b = self._new(next(self._ids), batch.model, [r])
            b.worker, b.preemptions = batch.worker, batch.preemptions
            self.running[b.id] = b
            out.append(b)
        return out

    # -- deadlines -------------------------------------------------------------------------
    def _live(self, r: Request, b: B | None) -> bool:
        """Whether ``r`` (fresh, ``b`` None) or preempted batch ``b`` is still queued: a
        deadline entry or the queue-wait bound's oldest request still describes it."""
        if b is None:
            return not r.status and r.start != r.start  # not started (start is NaN)
        return self._resumed.get(id(r)) is b

    def next_deadline(self) -> float | None:
        """The earliest instant a queued entry expires or is shed (when :meth:`expire` has
        work), None if none."""
        dl = self._deadlines
        nd: float | None = None
        while dl:
            d, _, r, b = dl[0]
            if self._live(r, b):
                nd = d
                break
            heapq.heappop(dl)
        if self.max_wait > 0:
            head = self._oldest()
            if head is not None:
                shed = head.arrival + self.max_wait
                nd = shed if nd is None or shed < nd else nd
        return nd

    def _purge(self, now: float) -> None:
        """Remove every queued entry whose deadline has been reached, and every fresh request
        that has waited ``max_wait``; they wait in the outbox for :meth:`expire`."""
        dl = self._deadlines
        found = False
        while dl and dl[0][0] <= now:
            _, _, r, b = heapq.heappop(dl)
            found = found or self._live(r, b)
        mw = self.max_wait
        head = self._oldest() if mw > 0 else None
        shed = head is not None and head.arrival + mw <= now  # as _due and next_deadline
        if not (found or shed):
            return
        resumed = self._resumed

        def due(q: Request) -> bool:
            b = resumed.get(id(q)) if resumed else None
            if b is None:
                d = q.deadline
                if shed and q.arrival + mw <= now:
                    return True
            else:
                d = b.deadline
            return d is not None and d <= now

        out = self._expired
        for q in self.policy.remove_if(due):
            batch = resumed.pop(id(q), None)
            if batch is None:
                shed_at = q.arrival + mw if mw > 0 else math.inf
                if q.deadline is not None and q.deadline <= shed_at:
                    q.status, q.end = "timeout", q.deadline
                else:
                    q.status, q.end = "rejected", shed_at
                out.append((q, None))
                self.inflight -= 1
                if self._fill:
                    self._fresh[q.model] -= 1
            else:
                d = batch.deadline
                for m in batch.requests:
                    m.status, m.end = "timeout", d  # type: ignore[assignment]
                    out.append((m, batch))
                self.inflight -= len(batch.requests)

    def expire(self, now: float) -> list[tuple[Request, B | None]]:
        """Remove every queued entry whose deadline has been reached by ``now`` (or that has
        waited ``max_wait``) and return every request expired since the last call (each with
        its preempted batch, or None if it never started), status ``timeout`` (``rejected``:
        shed), ``end`` the instant its deadline (its bound) was reached."""
        if self._due(now):
            self._purge(now)
        if not self._expired:
            return []
        out, self._expired = self._expired, []
        return out

    # -- shutdown --------------------------------------------------------------------------
    def close(
        self, now: float
    ) -> tuple[list[tuple[Request, B | None]], list[tuple[Request, B]]]:
        """Stop: every queued request ends ``rejected`` and every running one ``error`` at
        ``now``; returns both (with their batches).  Later :meth:`take` calls return None."""
        self.accepting = False
        self.stopped = True
        queued: list[tuple[Request, B | None]] = []
        for q in self.policy.remove_if(lambda r: True):
            batch = self._resumed.pop(id(q), None)
            for m in batch.requests if batch is not None else [q]:
                m.status, m.end = "rejected", now
                queued.append((m, batch))
        running: list[tuple[Request, B]] = []
        for batch in self.running.values():
            for m in batch.requests:
                m.status, m.end = "error", now
                running.append((m, batch))
        self.running.clear()
        self.inflight -= len(queued) + len(running)
        self._fresh.clear()
        self._deadlines.clear()
        return queued, running
