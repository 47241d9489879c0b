"""The queue-policy interface shared by the simulator and the live servers.

A policy is a plain object with no I/O and no locking: a binary heap of
``(key, counter, request)`` entries, where ``key`` is what the policy orders by and the counter
breaks ties first-come-first-served — the same shape as SimPy's event heap.  ``push`` and
``pop`` are O(log n).  Callers that share a policy between threads wrap it in their own lock.

Preemptive policies (MLFQ) also take part in execution: after each stage of a request the
executor calls :meth:`on_run`; when it returns True the executor stops the request at that stage
boundary and hands it back with :meth:`requeue`.
"""

from __future__ import annotations

import heapq
import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator
from typing import Any, ClassVar

from servelab.core.requests import Request

Entry = tuple[Any, int, Request]


class QueuePolicy(ABC):
    name: ClassVar[str] = ""
    preemptive: ClassVar[bool] = False
    uses_predictor: ClassVar[bool] = False
    _heap: list[Entry]

    def __init__(self) -> None:
        self._heap: list[Entry] = []
        self._seq = itertools.count()

    @abstractmethod
    def key(self, request: Request, now: float) -> Any:
        """The sort key of a request entering the queue at ``now`` (smaller = served first)."""

    # -- queue operations ------------------------------------------------------------------
    def push(self, request: Request, now: float = 0.0) -> None:
        heapq.heappush(self._heap, (self.key(request, now), next(self._seq), request))

    def pop(self, now: float = 0.0) -> Request:
        """Remove and return the next request to serve; IndexError when empty."""
        if not self._heap:
            raise IndexError("pop from an empty queue")
        return heapq.heappop(self._heap)[2]

    def peek(self) -> Request:
        if not self._heap:
            raise IndexError("peek at an empty queue")
        return self._heap[0][2]

    def pop_batch(
        self,
        max_size: int,
        now: float = 0.0,
        group: Callable[[Request], Hashable] = lambda r: r.model,
    ) -> list[Request]:
        """Pop the next request and up to ``max_size - 1`` more of the same group (model),
        in policy order.  Requests of other groups keep their places.  O(n) beyond the first."""
        first = self.pop(now)
        if max_size <= 1 or not self._heap:
            return [first]
        g = group(first)
        same = [e for e in self._heap if group(e[2]) == g]
        if not same:
            return [first]
        chosen = heapq.nsmallest(max_size - 1, same)
        chosen_ids = {id(e[2]) for e in chosen}
        self._heap = [e for e in self._heap if id(e[2]) not in chosen_ids]
        heapq.heapify(self._heap)
        return [first] + [e[2] for e in chosen]

    def remove_if(self, predicate: Callable[[Request], bool]) -> list[Request]:
        """Remove and return every queued request matching ``predicate`` (e.g. expired). O(n)."""
        removed = [e[2] for e in self._heap if predicate(e[2])]
        if removed:
            self._heap = [e for e in self._heap if not predicate(e[2])]
            heapq.heapify(self._heap)
        return removed

    def __len__(self) -> int:
        return len(self._heap)

    def __bool__(self) -> bool:
        return bool(self._heap)

    def __iter__(self) -> Iterator[Request]:
        """The queued requests, in no particular order."""
        return (e[2] for e in self._heap)

    # -- execution hooks (preemptive policies override) --------------------------------------
    def on_run(self, request: Request, ran: float, now: float = 0.0) -> bool:
        """Account ``ran`` seconds of execution; True means: preempt at this stage boundary."""
        request.executed += ran
        return False

    def requeue(self, request: Request, now: float = 0.0) -> None:
        """Return a preempted request to the queue."""
        self.push(request, now)
