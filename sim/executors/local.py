"""The default executor: a local process pool (or in-process, serially, with ``jobs=1``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from servelab.sim.executors.base import Executor


def default_jobs() -> int:
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class LocalExecutor(Executor):
    """``jobs`` worker processes on this machine.  At most ``2 * jobs`` points are in flight at
    a time, so a sweep of many thousands of points does not queue them all at once."""

    name = "local"

    def __init__(self, jobs: int | None = None):
        self.jobs = default_jobs() if jobs is None else int(jobs)
        if self.jobs < 1:
            raise ValueError(f"jobs must be >= 1, got {self.jobs}")
        self._pool: ProcessPoolExecutor | None = None

    def map_unordered(
        self, fn: Callable[[Any], Any], items: Sequence[Any]
    ) -> Iterator[tuple[Any, Any]]:
        if self.jobs == 1:
            for item in items:
                try:
                    result = fn(item)
                except Exception as exc:  # reported per point, never raised
                    result = exc
                yield item, result
            return
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.jobs)
        pending: dict[Future[Any], Any] = {}
        todo = iter(items)
        limit = 2 * self.jobs
        exhausted = False
        while pending or not exhausted:
            while not exhausted and len(pending) < limit:
                item = next(todo, _END)
                if item is _END:
                    exhausted = True
                    break
                pending[self._pool.submit(fn, item)] = item
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                item = pending.pop(fut)
                error = fut.exception()
                yield item, error if error is not None else fut.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


_END = object()
