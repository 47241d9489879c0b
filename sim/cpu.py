"""The CPU: cores shared by running jobs, GIL contention inside each interpreter, serial loops.

Every job has ``work`` (seconds of CPU at full speed), a busy-thread ``demand`` (intra-op
threads make a forward pass use several), a ``kind`` (a model name, ``frontend``, ``client``),
a GIL *domain* (the interpreter it runs in: jobs of one domain share one GIL; ``None`` — a
worker process of its own — contends with nobody) and a GIL share ``gil`` (the fraction of its
work that holds the GIL).  Each running job ``i`` progresses at its own rate::

    rate_i = min(1, cores / D) / slowdown(D) / stretch_i

* ``stretch_i >= 1`` is the GIL: how much longer ``i``'s work takes because other jobs of its
  domain want the token.  When the profile has co-run rates for every pair of kinds running in
  the domain (``pairs[(a, b)]``: the rate of a kind-``a`` thread beside a kind-``b`` thread,
  measured by ``calibrate``'s co-run benchmark) the stretches add up:
  ``stretch_i = 1 + sum_j (1 / pairs[(kind_i, kind_j)] - 1)`` — exact for two threads, and it
  keeps what the fluid model cannot: a thread that re-acquires the GIL often (an LSTM, an HTTP
  thread) starves beside one that holds it (the convoy effect), while two holders share it.
  Otherwise the fluid token model of :mod:`servelab.core.gil` applies, from the GIL shares.
* ``D = sum_j demand_j / stretch_j``: a thread waiting for the GIL sleeps, it does not use a
  core; ``min(1, cores / D)`` is processor sharing of the cores (with one core and unlimited
  jobs this is exactly M/G/1-PS); ``slowdown(D)`` the calibrated interference curve.
* A job submitted with a ``serial`` group waits until no other job of that group runs (first
  come, first served): an asyncio event loop runs one callback at a time.

Rates change only when a job starts or ends, so between events every job's remaining work
falls linearly: each event advances all running jobs, recomputes their rates (O(jobs x kinds))
and keeps one timer — the next completion — in the SimPy queue; a timer made obsolete by a
later event is ignored when it fires.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import simpy
from simpy.events import Timeout

from servelab.core.gil import stretch

Done = Callable[[Any], None]

DEFAULT = object()
"""``domain`` default: the server process's GIL when inference shares it, else no domain."""

_EPS = 1e-12


class _Job:
    __slots__ = ("left", "demand", "gil", "kind", "domain", "serial", "done", "arg", "seq",
                 "rate", "stretch")

    def __init__(self, left: float, demand: float, gil: float, kind: str, domain: Hashable | None,
                 serial: Hashable | None, done: Done, arg: Any, seq: int):
        self.left = left
        self.demand = demand
        self.gil = gil
        self.kind = kind
        self.domain = domain
        self.serial = serial
        self.done = done
        self.arg = arg
        self.seq = seq
        self.rate = 1.0
        self.stretch = 1.0


class FluidCpu:
    """A pool of ``cores`` shared by jobs (see the module docstring for the rate model).

    ``shared_gil``: jobs submitted without a domain share the server process's GIL (domain
    ``"server"``) — threads and async with thread offload; otherwise each has its own.
    ``pairs``: co-run rates by (kind, kind), e.g. from the profile's ``gil.pairs``.
    ``inference_serial``: a serial group for jobs submitted without one (async inline: the
    event loop runs inference itself).
    """

    def __init__(
        self,
        env: simpy.Environment,
        cores: int,
        slowdown: Callable[[float], float] | None = None,
        shared_gil: bool = True,
        gil_contention: float = 0.0,
        pairs: Mapping[tuple[str, str], float] | None = None,
        inference_serial: Hashable | None = None,
    ):
        if cores < 1:
            raise ValueError(f"cores must be >= 1, got {cores}")
        self.env = env
        self.cores = float(cores)
        self.slowdown = slowdown
        self.shared_gil = shared_gil
        self.gil_contention = gil_contention
        self.pairs: dict[tuple[str, str], float] = {
            k: max(float(v), 1e-3) for k, v in (pairs or {}).items()
        }
        self.inference_serial = inference_serial
        self._jobs: list[_Job] = []
        self._serial_busy: dict[Hashable, _Job] = {}
        self._serial_wait: dict[Hashable, deque[_Job]] = {}
        self._seq = itertools.count()
        self._t = 0.0
        self._timer: Timeout | None = None
        self._batching = False
        self._stretch_cache: dict[tuple[tuple[str, int], ...], dict[str, float] | None] = {}
        self._fluid_cache: dict[tuple[float, ...], float] = {}
        # Statistics.
        self.busy_area = 0.0  # integral of min(D, cores) dt
        self.busy = 0.0  # current effective demand D
        self.jobs_done = 0

    def __len__(self) -> int:
        return len(self._jobs)

    # -- jobs ----------------------------------------------------------------------------------
    def submit(
        self, work: float, demand: float, gil: float, done: Done, arg: Any, kind: str = "",
        domain: Any = DEFAULT, serial: Any = DEFAULT,
    ) -> None:
        """Start a job of ``work`` seconds; ``done(arg)`` is called when it completes."""
        if domain is DEFAULT:
            domain = "server" if self.shared_gil else None
        if serial is DEFAULT:
            serial = self.inference_serial
        job = _Job(max(work, 0.0), demand, gil if domain is not None else 0.0, kind, domain,
                   serial, done, arg, next(self._seq))
        self._advance()
        if serial is not None:
            if serial in self._serial_busy:
                self._serial_wait.setdefault(serial, deque()).append(job)
                return
            self._serial_busy[serial] = job
        self._jobs.append(job)
        if not self._batching:
            self._reschedule()

    def _advance(self) -> None:
        now = self.env._now
        dt = now - self._t
        if dt > 0:
            for j in self._jobs:
                j.left -= j.rate * dt
            b = self.busy
            self.busy_area += (b if b < self.cores else self.cores) * dt
            self._t = now

    def _table_stretch(self, counts: dict[str, int]) -> dict[str, float] | None:
        """Stretch per kind for a domain running ``counts`` jobs of each kind (the co-run
        table's additive rule), or None when the table lacks a pair (fluid model then)."""
        key = tuple(sorted(counts.items()))
        hit = self._stretch_cache.get(key, False)
        if hit is not False:
            return hit  # type: ignore[return-value]
        pairs = self.pairs
        out: dict[str, float] | None = {}
        for a in counts:
            s = 1.0
            for b, n in counts.items():
                r = pairs.get((a, b))
                if r is None:
                    out = None
                    break
                s += (n - (a == b)) * (1.0 / r - 1.0)
            if out is None:
                break
            out[a] = s
        self._stretch_cache[key] = out
        return out

    def _stretches(self) -> None:
        domains: dict[Hashable, list[_Job]] = {}
        for j in self._jobs:
            j.stretch = 1.0
            if j.domain is not None:
                members = domains.get(j.domain)
                if members is None:
                    domains[j.domain] = [j]
                else:
                    members.append(j)
        for members in domains.values():
            if len(members) < 2:
                continue
            counts: dict[str, int] = {}
            for j in members:
                counts[j.kind] = counts.get(j.kind, 0) + 1
            table = self._table_stretch(counts) if self.pairs else None
            if table is not None:
                for j in members:
                    j.stretch = table[j.kind]
                continue
            # the fluid token model over the domain's shares
            if sum(j.gil > 0 for j in members) < 2:
                continue
            key = tuple(sorted(round(j.gil, 3) for j in members))  # shares to 0.1%: cached
            x = self._fluid_cache.get(key)
            if x is None:
                x = self._fluid_cache[key] = stretch(key, 1.0, self.gil_contention)
            if x > 1.0:
                for j in members:
                    j.stretch = 1.0 - j.gil + j.gil * x

    def _compute_rates(self) -> None:
        jobs = self._jobs
        if len(jobs) > 1:
            self._stretches()
        else:
            jobs[0].stretch = 1.0
        d = 0.0
        for j in jobs:
            d += j.demand / j.stretch
        self.busy = d
        base = 1.0 if d <= self.cores else self.cores / d
        if self.slowdown is not None and d > 1.0:
            base /= self.slowdown(d)
        for j in jobs:
            j.rate = base / j.stretch

    def _reschedule(self) -> None:
        jobs = self._jobs
        if not jobs:
            self._timer = None
            self.busy = 0.0
            return
        self._compute_rates()
        dt = min(j.left / j.rate for j in jobs)
        timer = Timeout(self.env, dt if dt > 0 else 0.0)
        timer.callbacks.append(self._on_timer)  # type: ignore[union-attr]
        self._timer = timer

    def _on_timer(self, event: simpy.Event) -> None:
        if event is not self._timer:
            return  # superseded by a later event
        self._timer = None
        self._advance()
        finished, running = [], []
        for j in self._jobs:
            if j.left <= _EPS * (1.0 + j.rate):  # due within a picosecond
                finished.append(j)
            else:
                running.append(j)
        if not finished:  # rounding: finish the closest one
            closest = min(running, key=lambda j: j.left / j.rate)
            running.remove(closest)
            finished.append(closest)
        finished.sort(key=lambda j: j.seq)
        self._jobs = running
        for j in finished:
            if j.serial is not None:
                nxt = self._serial_wait.get(j.serial)
                if nxt:
                    job = nxt.popleft()
                    self._serial_busy[j.serial] = job
                    self._jobs.append(job)
                else:
                    del self._serial_busy[j.serial]
        self.jobs_done += len(finished)
        # Completions may start new jobs; reschedule once, after all of them.
        self._batching = True
        try:
            for j in finished:
                j.done(j.arg)
        finally:
            self._batching = False
        self._reschedule()

    def running(self, domain: Hashable) -> dict[str, int]:
        """How many jobs of each kind run now in GIL ``domain``."""
        out: dict[str, int] = {}
        for j in self._jobs:
            if j.domain == domain:
                out[j.kind] = out.get(j.kind, 0) + 1
        return out

    def utilization(self, horizon: float) -> float:
        """Mean fraction of the cores busy over ``[0, horizon]``."""
        self._advance()
        return self.busy_area / (self.cores * horizon) if horizon > 0 else 0.0
