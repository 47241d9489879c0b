"""The CPU: cores shared by the running jobs, with interference and the GIL, in the fluid limit.

Every running job progresses at the same rate ``r`` (seconds of work per second), recomputed
whenever a job starts or ends::

    r = min(1, cores / D) / slowdown(D)          D = sum of the jobs' busy-thread demands
    r = min(r, cap(n) / G)   (one shared GIL)    G = sum of the jobs' GIL shares

* ``min(1, cores / D)``: when more threads are busy than there are cores, the OS time-slices
  them equally (processor sharing — with one core and unlimited workers this is exactly
  M/G/1-PS).
* ``slowdown(D)``: the calibrated interference curve (threads or processes) at ``D`` busy
  threads.
* The GIL is one token; job ``i`` must hold it for a fraction ``g_i`` of its work, so at rate
  ``r`` the token is busy ``G r`` of the time.  When that would exceed its capacity the token
  is the bottleneck and every thread of the process slows to ``cap(n) / G`` — the fluid limit
  of threads taking turns with the token.  ``cap(n) = 1 / (1 + overhead (n - 1))`` with ``n``
  jobs wanting the GIL: contention wastes token time (hand-offs, convoys), which is why a
  GIL-bound model gets slower beyond the thread count that saturates the token.  Processes
  each have their own GIL (``shared_gil=False``).

Because the rate is the same for every job, the CPU keeps one *virtual clock* ``V`` (work
done by any job since time 0) and a heap of the jobs' virtual finishing points: a start or an end
costs O(log n), and only one timer (the next completion) is pending in the SimPy queue at a
time.  A timer that a rate change made obsolete is ignored when it fires.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any

import simpy
from simpy.events import Timeout

Done = Callable[[Any], None]


class FluidCpu:
    """A pool of ``cores`` shared by jobs (see the module docstring for the rate model)."""

    def __init__(
        self,
        env: simpy.Environment,
        cores: int,
        slowdown: Callable[[float], float] | None = None,
        shared_gil: bool = True,
        gil_contention: float = 0.0,
    ):
        if cores < 1:
            raise ValueError(f"cores must be >= 1, got {cores}")
        self.env = env
        self.cores = float(cores)
        self.slowdown = slowdown
        self.shared_gil = shared_gil
        self.gil_contention = gil_contention
        self._heap: list[tuple[float, int, float, float, Done, Any]] = []
        self._seq = itertools.count()
        self.v = 0.0  # virtual clock: work done by every running job since time 0
        self._t = 0.0  # real time of the last update
        self.rate = 1.0
        self.demand = 0.0  # D
        self.gil = 0.0  # G
        self.gil_jobs = 0  # n: running jobs with a GIL share
        self._timer: Timeout | None = None
        self._timer_v = -1.0
        self._batching = False
        # Statistics.
        self.busy_area = 0.0  # integral of min(D, cores) dt
        self.jobs_done = 0

    def __len__(self) -> int:
        return len(self._heap)

    # -- jobs ----------------------------------------------------------------------------------
    def submit(self, work: float, demand: float, gil: float, done: Done, arg: Any) -> None:
        """Start a job of ``work`` seconds; ``done(arg)`` is called when it completes."""
        self._advance()
        heapq.heappush(self._heap, (self.v + work, next(self._seq), demand, gil, done, arg))
        self.demand += demand
        if gil > 0:
            self.gil += gil
            self.gil_jobs += 1
        if not self._batching:
            self._reschedule()

    def _advance(self) -> None:
        now = self.env._now
        dt = now - self._t
        if dt > 0:
            if self._heap:
                self.v += self.rate * dt
                d = self.demand
                self.busy_area += (d if d < self.cores else self.cores) * dt
            self._t = now

    def _compute_rate(self) -> float:
        d = self.demand
        r = 1.0 if d <= self.cores else self.cores / d
        if self.slowdown is not None and d > 1.0:
            r /= self.slowdown(d)
        if self.shared_gil and self.gil > 0:
            cap = 1.0 / (1.0 + self.gil_contention * (self.gil_jobs - 1))
            if self.gil * r > cap:
                r = cap / self.gil
        return r

    def _reschedule(self) -> None:
        heap = self._heap
        if not heap:
            self._timer = None
            self.demand = self.gil = 0.0  # shed accumulated rounding
            self.gil_jobs = 0
            return
        r = self._compute_rate()
        top = heap[0][0]
        if self._timer is not None and r == self.rate and top == self._timer_v:
            return  # the pending timer is still right
        self.rate = r
        self._timer_v = top
        dt = (top - self.v) / r
        timer = Timeout(self.env, dt if dt > 0 else 0.0)
        timer.callbacks.append(self._on_timer)  # type: ignore[union-attr]
        self._timer = timer

    def _on_timer(self, event: simpy.Event) -> None:
        if event is not self._timer:
            return  # superseded by a later rate change
        self._timer = None
        self._advance()
        heap = self._heap
        v = max(self.v, heap[0][0])
        self.v = v
        limit = v + 1e-12 * (1.0 + abs(v))
        finished = []
        while heap and heap[0][0] <= limit:
            _, _, demand, gil, done, arg = heapq.heappop(heap)
            self.demand -= demand
            if gil > 0:
                self.gil -= gil
                self.gil_jobs -= 1
            finished.append((done, arg))
        self.jobs_done += len(finished)
        # Completions may start new jobs; reschedule once, after all of them.
        self._batching = True
        try:
            for done, arg in finished:
                done(arg)
        finally:
            self._batching = False
        self._reschedule()

    def utilization(self, horizon: float) -> float:
        """Mean fraction of the cores busy over ``[0, horizon]``."""
        self._advance()
        return self.busy_area / (self.cores * horizon) if horizon > 0 else 0.0
