"""Locks that say who holds them and who waits: what the deadlock watchdog reads.

A :class:`TrackedLock` is a ``threading.Lock`` that records its owner thread and, while a thread
blocks in :meth:`~TrackedLock.acquire`, a *wait* in its :class:`LockRegistry` (which lock, since
when).  The registry turns those into a wait-for graph: :meth:`LockRegistry.chain` follows a
waiting thread to the owner of its lock, to the lock that owner waits for, and so on, ending in a
cycle (a deadlock), at an owner that is running (plain contention), or at an owner thread that no
longer exists (a leaked lock).  The uncontended path costs one extra attribute write.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Wait:
    thread: int          # threading.get_ident() of the waiting thread
    lock: str            # the lock's name
    since: float         # time.monotonic() when the wait began
    owner: int | None    # the lock's owner at the snapshot (None: just released)


@dataclass(frozen=True)
class Chain:
    """Where a waiting thread's wait-for path ends (see :meth:`LockRegistry.chain`)."""

    kind: str                  # "deadlock" (a cycle), "leaked" (owner gone), "contention"
    waits: tuple[Wait, ...]    # the waits along the path (the cycle's, for a deadlock)


class LockRegistry:
    """The tracked locks of a process and the waits on them (thread-safe)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._waits: dict[int, tuple[TrackedLock, float]] = {}
        self.locks: weakref.WeakSet[TrackedLock] = weakref.WeakSet()

    def _begin(self, thread: int, lock: TrackedLock) -> None:
        with self._mutex:
            self._waits[thread] = (lock, time.monotonic())

    def _end(self, thread: int) -> None:
        with self._mutex:
            self._waits.pop(thread, None)

    def waits(self) -> list[Wait]:
        """A snapshot of every thread blocked on a tracked lock."""
        with self._mutex:
            items = list(self._waits.items())
        return [Wait(t, lock.name, since, lock.owner) for t, (lock, since) in items]

    def chain(self, thread: int, alive: set[int] | None = None) -> Chain | None:
        """Follow ``thread``'s wait to the end of its wait-for path (None: it is not waiting).
        ``alive`` is the set of live thread idents (default: this process's threads)."""
        alive = alive if alive is not None else {t.ident for t in threading.enumerate()
                                                  if t.ident is not None}
        by_thread = {w.thread: w for w in self.waits()}
        path: list[Wait] = []
        seen: dict[int, int] = {}
        t: int | None = thread
        while t is not None and t in by_thread:
            if t in seen:
                return Chain("deadlock", tuple(path[seen[t]:]))
            seen[t] = len(path)
            w = by_thread[t]
            path.append(w)
            t = w.owner
        if not path:
            return None
        last = path[-1]
        if last.owner is not None and last.owner not in alive:
            return Chain("leaked", tuple(path))
        return Chain("contention", tuple(path))


REGISTRY = LockRegistry()
"""The process's registry: every TrackedLock registers here unless given another."""


class TrackedLock:
    """A non-reentrant lock with an owner and registered waits (``with lock:`` works)."""

    def __init__(self, name: str, registry: LockRegistry | None = None):
        self.name = name
        self.owner: int | None = None
        self._lock = threading.Lock()
        self._registry = registry if registry is not None else REGISTRY
        self._registry.locks.add(self)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        me = threading.get_ident()
        if self._lock.acquire(False):
            self.owner = me
            return True
        if not blocking:
            return False
        self._registry._begin(me, self)
        try:
            got = self._lock.acquire(True, timeout)
        finally:
            self._registry._end(me)
        if got:
            self.owner = me
        return got

    def release(self) -> None:
        self.owner = None
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def __enter__(self) -> TrackedLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"TrackedLock({self.name!r}, owner={self.owner})"
