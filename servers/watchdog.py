"""The deadlock watchdog: answers requests whose inference threads are stuck on locks.

Every ``interval`` seconds it looks at the threads blocked on a tracked lock
(:mod:`servelab.servers.locks`).  A thread that has waited at least ``threshold_s`` is *stuck*
when its wait-for path ends in a cycle (a deadlock: two locks taken in opposite order) or at a
lock whose owner thread no longer exists (leaked); a path that ends at a running owner is plain
contention and left alone, however long.  For each stuck path the watchdog

* answers every running batch of the threads on it with HTTP 500 and a message naming the
  threads and the locks each holds and waits for (the API sends it as ``{"error": ...}``),
* logs that message and every thread's stack (``sys._current_frames``), once per path,
* counts the requests in ``servelab_watchdog_stuck_requests{kind}``.

It watches the threads of this process (inference threads of the threads server and of the
async server's thread offload, where the model locks live); a process worker runs one batch at
a time on one thread, and its death is the pool's to detect.  The stuck threads stay stuck
(Python cannot break a lock wait from outside): the server keeps serving with the workers it
has left, and the log says how many were lost.  ``threshold_s`` is ``ServeOptions.watchdog_s``
(``--watchdog-s``; 0 disables the watchdog).
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from typing import TYPE_CHECKING

from servelab.servers.locks import REGISTRY, Chain, LockRegistry

if TYPE_CHECKING:
    from servelab.servers.engine import Engine

log = logging.getLogger(__name__)


def thread_stacks() -> str:
    """Every thread's stack, named, most recent call last."""
    names = {t.ident: t.name for t in threading.enumerate()}
    parts = []
    for ident, frame in sys._current_frames().items():
        parts.append(f'Thread {names.get(ident, "?")} (ident {ident}):\n'
                     + "".join(traceback.format_stack(frame)))
    return "\n".join(parts)


def describe(chain: Chain, names: dict[int, str], now: float) -> str:
    """The stuck path in words: who holds what and waits for what."""
    held_by = {w.owner: w.lock for w in chain.waits if w.owner is not None}
    steps = []
    for w in chain.waits:
        who = names.get(w.thread, str(w.thread))
        holds = held_by.get(w.thread)
        owner = names.get(w.owner, str(w.owner)) if w.owner is not None else "nobody"
        steps.append(f"thread {who}" + (f" holds lock '{holds}' and" if holds else "")
                     + f" waits {now - w.since:.1f} s for lock '{w.lock}' (held by {owner})")
    head = {"deadlock": "deadlock detected", "leaked": "stuck on a lock whose owner is gone"}
    return f"{head.get(chain.kind, chain.kind)}: " + "; ".join(steps)


class Watchdog:
    """Watch ``engine``'s in-flight batches (see the module docstring)."""

    def __init__(self, engine: Engine, threshold_s: float, registry: LockRegistry | None = None,
                 interval_s: float | None = None):
        if threshold_s <= 0:
            raise ValueError(f"watchdog threshold must be > 0 s, got {threshold_s}")
        self.engine = engine
        self.threshold_s = threshold_s
        self.interval_s = interval_s if interval_s is not None else min(1.0, threshold_s / 4)
        self.registry = registry if registry is not None else REGISTRY
        self.answered = 0
        self.reports: list[str] = []
        self._reported: set[frozenset[int]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Watchdog:
        self._thread = threading.Thread(target=self._loop, name="watchdog", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:  # pragma: no cover - the watchdog must not die
                log.exception("watchdog check failed")

    def check(self) -> int:
        """One pass: answer the batches of stuck threads; how many requests it answered."""
        import time

        now = time.monotonic()
        threads = {t.ident: t for t in threading.enumerate() if t.ident is not None}
        names = {i: t.name for i, t in threads.items()}
        done = 0
        for w in self.registry.waits():
            if now - w.since < self.threshold_s:
                continue
            chain = self.registry.chain(w.thread, set(threads))
            if chain is None or chain.kind == "contention":
                continue
            members = frozenset(x.thread for x in chain.waits)
            message = describe(chain, names, now)
            jobs = [j for j in list(self.engine.running.values()) if j.thread in members]
            if members not in self._reported:  # logged before answering: stacks still stuck
                self._reported.add(members)
                self.reports.append(message)
                log.error("watchdog: %s; %d request(s) answered 500; %d inference thread(s) "
                          "lost until the server restarts.\nAll thread stacks:\n%s",
                          message, sum(len(j.requests) for j in jobs), len(members),
                          thread_stacks())
            for job in jobs:
                n = len(job.requests)
                self.engine.fail(job, f"{message}; answered by the server's watchdog after "
                                 f"{self.threshold_s:g} s (--watchdog-s)")
                self.engine.metrics.watchdog_stuck.labels(chain.kind).inc(n)
                done += n
        self.answered += done
        return done
