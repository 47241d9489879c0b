"""Multi-level feedback queue with stage-boundary preemption and periodic priority boost."""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

from servelab.core.policies.base import Entry, QueuePolicy
from servelab.core.requests import Request


class Mlfq(QueuePolicy):
    """Every request starts at level 0; FIFO within a level; lower levels served first.

    ``quanta[i]`` is the execution time a request may accumulate at level ``i`` before it is
    demoted to level ``i + 1``; the last level has no quantum.  Execution can only stop at a
    model's stage boundaries, so a request overruns its quantum by at most one stage.  Every
    ``boost_interval`` seconds all queued requests return to level 0, so long requests cannot
    starve behind a stream of short ones.
    """

    name = "mlfq"
    preemptive = True
    _heap: list[Entry]

    def __init__(self, quanta: Sequence[float] = (0.02, 0.1), boost_interval: float = 1.0):
        super().__init__()
        if not quanta or any(q <= 0 for q in quanta):
            raise ValueError(f"MLFQ quanta must be positive seconds, got {list(quanta)}")
        if boost_interval <= 0:
            raise ValueError(f"MLFQ boost_interval must be positive, got {boost_interval}")
        self.quanta = (*(float(q) for q in quanta), math.inf)
        self.levels = len(self.quanta)
        self.boost_interval = float(boost_interval)
        self._next_boost = self.boost_interval
        self.boosts = 0

    def key(self, request: Request, now: float) -> int:
        return request.level

    def _maybe_boost(self, now: float) -> None:
        if now < self._next_boost:
            return
        # Skip whole missed intervals: one boost per crossing, aligned to the interval grid.
        self._next_boost = (math.floor(now / self.boost_interval) + 1) * self.boost_interval
        if any(e[2].level for e in self._heap):
            for _, _, r in self._heap:
                r.level, r.level_executed = 0, 0.0
            # Keep arrival order within the merged level: the counters are still in that order.
            self._heap = [(0, seq, r) for _, seq, r in self._heap]
            heapq.heapify(self._heap)
        self.boosts += 1

    def push(self, request: Request, now: float = 0.0) -> None:
        self._maybe_boost(now)
        super().push(request, now)

    def pop(self, now: float = 0.0) -> Request:
        self._maybe_boost(now)
        return super().pop(now)

    def on_run(self, request: Request, ran: float, now: float = 0.0) -> bool:
        request.executed += ran
        request.level_executed += ran
        return request.level_executed >= self.quanta[request.level]

    def requeue(self, request: Request, now: float = 0.0) -> None:
        if request.level_executed >= self.quanta[request.level]:
            request.level = min(request.level + 1, self.levels - 1)
            request.level_executed = 0.0
        self.push(request, now)
