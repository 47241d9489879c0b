"""Executors that run batches inside the server process: a pool of inference threads, and
coroutines on the asyncio event loop (``--offload inline``).

Both pull jobs from the shared :class:`~servelab.servers.engine.Engine` and run them with
:class:`~servelab.servers.runner.Work`, asking the engine after every stage whether to stop
there (MLFQ).  A batch whose preprocessing rejects its input is retried request by request, so
one bad request fails alone (400), not its batch mates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from servelab.servers.engine import Engine
from servelab.servers.locks import TrackedLock
from servelab.servers.runner import Work
from servelab.servers.tickets import LiveBatch
from servelab.servers.zoo.base import ZooModel

log = logging.getLogger(__name__)

INPUT_ERRORS = (ValueError, TypeError, KeyError, UnicodeDecodeError)


class _NoLock:
    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        return None


def make_locks(models: Mapping[str, Any], mode: str) -> dict[str, Any]:
    """``--model-lock``: one lock for all models (global), one per model, or none.  The locks
    are tracked (owner and waiters), so the deadlock watchdog can name them."""
    if mode == "global":
        lock = TrackedLock("model-lock:global")
        return {m: lock for m in models}
    if mode == "per-model":
        return {m: TrackedLock(f"model-lock:{m}") for m in models}
    if mode == "none":
        return {m: _NoLock() for m in models}
    raise ValueError(f"unknown model lock {mode!r}; valid: global, per-model, none")


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class _Runner:
    """What both in-process executors share: run one slice of a job, or fail it cleanly."""

    def __init__(self, engine: Engine, models: Mapping[str, ZooModel], model_lock: str = "none"):
        self.engine = engine
        self.models = dict(models)
        self.locks = make_locks(self.models, model_lock)

    def _start_work(self, job: LiveBatch) -> Work | None:
        """The job's Work, preprocessed; None when preprocessing failed (job answered)."""
        if job.work is not None:
            return job.work  # type: ignore[no-any-return]
        work = Work(self.models[job.model], rows=job.rows())
        try:
            work.prepare()
        except INPUT_ERRORS as exc:
            if len(job.requests) > 1:
                for sub in self.engine.split(job):
                    self._run_alone(sub)
            else:
                self.engine.fail(job, f"bad input for {job.model}: {_error_text(exc)}",
                                 "bad_input")
            return None
        job.work = work
        return work

    def _run_alone(self, job: LiveBatch) -> None:
        work = self._start_work(job)
        if work is not None:
            try:
                work.run(work.n)
                self._finish(job, work)
            except Exception as exc:
                log.exception("%s failed", job.model)
                self.engine.fail(job, _error_text(exc))

    def _finish(self, job: LiveBatch, work: Work) -> None:
        out = work.outputs(work.n)
        job.times = work.times
        self.engine.finish(job, out)


class ThreadExecutor(_Runner):
    """``workers`` inference threads pulling from the engine; model access guarded by
    ``model_lock`` (global / per-model / none) with the wait measured per batch."""

    def __init__(
        self, engine: Engine, models: Mapping[str, ZooModel], workers: int,
        model_lock: str = "per-model", name: str = "infer", nice: int = 0,
    ):
        super().__init__(engine, models, model_lock)
        self.n = workers
        self.name = name
        self.nice = nice
        self.threads: list[threading.Thread] = []
        self._running: set[int] = set()  # indices whose thread has not left its loop

    def start(self) -> None:
        self._grow(self.n)

    def _grow(self, n: int) -> None:
        for i in range(n):
            if i in self._running:
                continue  # still running (perhaps retired and not yet gone: it stays)
            t = threading.Thread(target=self._loop, args=(i,), name=f"{self.name}-{i}", daemon=True)
            self._running.add(i)
            if i < len(self.threads):
                self.threads[i] = t
            else:
                self.threads.append(t)
            t.start()

    def resize(self, n: int) -> None:
        """Run ``n`` inference threads from now on; call through :meth:`Engine.set_workers`
        (under the engine's lock, which every exit decision also holds).  New threads start at
        once; threads beyond ``n`` finish their batch and leave at their next take."""
        self.n = n
        self._grow(n)

    def _loop(self, i: int) -> None:
        if self.nice and sys.platform.startswith("linux"):  # a thread id has its own nice value
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + self.nice)

        def retired() -> bool:  # under the engine's lock, like resize(): no regrow can slip in
            if i < self.n:
                return False
            self._running.discard(i)
            return True

        while True:
            job = self.engine.take(worker=i, retired=retired)
            if job is None:
                return
            self.execute(job)

    def execute(self, job: LiveBatch) -> None:
        job.thread = threading.get_ident()
        try:
            work = self._start_work(job)
            if work is None:
                return
            lock = self.locks[job.model]
            t0 = time.perf_counter()
            lock.acquire()
            job.lock_wait += time.perf_counter() - t0
            try:
                finished = work.run(work.n, lambda ran: self.engine.on_stage(job, ran))
            finally:
                lock.release()
            if finished:
                self._finish(job, work)
            else:
                self.engine.requeue(job)
        except Exception as exc:
            log.exception("%s failed", job.model)
            self.engine.fail(job, _error_text(exc))

    def join(self, timeout: float = 5.0) -> None:
        end = time.perf_counter() + timeout
        for t in self.threads:
            t.join(max(0.0, end - time.perf_counter()))

    def info(self) -> list[dict[str, Any]]:
        return [{"worker": i, "thread": t.name, "native_id": t.native_id, "alive": t.is_alive()}
                for i, t in enumerate(self.threads) if i < self.n or t.is_alive()]


class InlineExecutor(_Runner):
    """``workers`` coroutines on the event loop that run inference right there, blocking the
    loop for each stage (``--offload inline``: the failure case, kept to be measured).  They
    yield to the loop between stages, so other requests' I/O (and other batches' stages)
    interleave at stage boundaries."""

    def __init__(self, engine: Engine, models: Mapping[str, ZooModel], workers: int):
        super().__init__(engine, models, "none")
        self.n = workers
        self.tasks: list[asyncio.Task[None]] = []
        self._wake: asyncio.Event | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start on ``loop``; call from the loop's thread."""
        self._wake = asyncio.Event()
        wake = self._wake

        def notify() -> None:
            with contextlib.suppress(RuntimeError):  # loop closed
                loop.call_soon_threadsafe(wake.set)

        self.engine.listeners.append(notify)
        self.tasks = [loop.create_task(self._loop(i)) for i in range(self.n)]

    async def _loop(self, i: int) -> None:
        assert self._wake is not None
        while not self.engine.stopped:
            job, wait = self.engine.poll(worker=i)
            if job is None:
                with contextlib.suppress(TimeoutError, asyncio.TimeoutError):  # 3.10: distinct
                    await asyncio.wait_for(self._wake.wait(), 0.25 if wait is None else wait)
                self._wake.clear()
                continue
            await self.execute(job)
            await asyncio.sleep(0)

    async def execute(self, job: LiveBatch) -> None:
        try:
            work = self._start_work(job)
            if work is None:
                return
            while not work.done:
                ran = work.step()
                if not work.done:
                    if self.engine.on_stage(job, ran):
                        self.engine.requeue(job)
                        return
                    await asyncio.sleep(0)
            self._finish(job, work)
        except Exception as exc:
            log.exception("%s failed", job.model)
            self.engine.fail(job, _error_text(exc))

    def info(self) -> list[dict[str, Any]]:
        return [{"worker": i, "task": "inline", "alive": not t.done()}
                for i, t in enumerate(self.tasks)]
