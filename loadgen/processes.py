"""Running one schedule from one or several sender processes.

``processes=1`` sends from this process.  ``processes=N`` splits the schedule round-robin
(request ``i`` goes to process ``i % N``) and starts N fresh ``spawn`` processes, each with its
own event loop, timer thread and connection pool.  Each worker opens its pool, reports ready,
and waits for the common start time ``t0`` on the system-wide monotonic clock, so the shares
interleave exactly as the original schedule; their results merge back by request id.

The parent waits for each worker's result until the run's hard end (see
:meth:`~servelab.loadgen.generator.OpenLoopSender.hard_end`) plus :data:`REPORT_S`; a worker
that has not reported by then (wedged) or that died is terminated and its share is recorded
``error`` with the reason, so a run always ends with every scheduled request accounted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from servelab.loadgen.generator import (
    CODE,
    COUNTERS,
    GRACE_S,
    OpenLoopSender,
    SenderOptions,
    SendResult,
    clock,
)
from servelab.loadgen.payloads import Payloads, Target
from servelab.loadgen.schedule import Schedule

log = logging.getLogger(__name__)

START_MARGIN_S = 0.2
"""How far in the future the common start time is set once every worker is ready."""
REPORT_S = 10.0
"""How long after the run's hard end the parent waits for a worker's result."""


class _Late(Exception):
    """A worker did not report by its deadline."""


def lost_share(share: Schedule, process: int, why: str, t0: float) -> SendResult:
    """The result of a sender process that never reported: every row ``error`` with ``why``."""
    n = len(share)
    now = clock()
    return SendResult(
        share.request_id, np.full(n, np.nan), np.full(n, now), np.zeros(n, dtype=np.int32),
        np.full(n, CODE["error"], dtype=np.int8), dict.fromkeys(range(n), why), t0,
        np.full(n, process, dtype=np.int64),
    )


def enter_realtime(priority: int = 10) -> Callable[[], None]:
    """Put this thread (and the threads it starts later) under SCHED_FIFO; returns an undo.

    A sender sleeps most of the time and needs the CPU at exact instants: on a busy machine
    the normal scheduler wakes it milliseconds late, a real-time policy at once.  The kernel's
    real-time throttling still leaves other processes at least 5% of each CPU.
    """
    if not hasattr(os, "sched_setscheduler"):
        log.warning("realtime: not supported on this platform; running normally")
        return lambda: None
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as exc:
        log.warning("realtime: cannot use SCHED_FIFO (%s); running normally", exc)
        return lambda: None
    return lambda: os.sched_setscheduler(0, policy, param)


def _install_sigint(sender: OpenLoopSender) -> Callable[[], object]:
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, sender.abort, "run was interrupted")
    except (ValueError, RuntimeError, NotImplementedError):  # not the main thread
        return lambda: None
    return lambda: loop.remove_signal_handler(signal.SIGINT)


def run_senders(
    schedule: Schedule, payloads: Payloads, target: Target, options: SenderOptions,
    processes: int = 1, on_start: Callable[[Callable[[], np.ndarray], float], None] | None = None,
    handle_sigint: bool = False,
) -> list[SendResult]:
    """Send ``schedule`` from ``processes`` processes; one result per process.

    ``on_start(counters, t0)`` is called once the start time is known, with a function that
    returns the live counters (one row per process) — for a progress line.
    """
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    if processes == 1:
        return [_run_here(schedule, payloads, target, options, on_start, handle_sigint)]
    return _run_spawned(schedule, payloads, target, options, processes, on_start)


def _run_here(schedule: Schedule, payloads: Payloads, target: Target, options: SenderOptions,
              on_start: Callable[..., None] | None, handle_sigint: bool) -> SendResult:
    counters = np.zeros(len(COUNTERS))
    undo_realtime = enter_realtime() if options.realtime else (lambda: None)

    async def main() -> SendResult:
        sender = OpenLoopSender(schedule, payloads, target, options, counters)
        await sender.prepare()
        undo = _install_sigint(sender) if handle_sigint else (lambda: None)
        t0 = clock() + 0.02
        if on_start is not None:
            on_start(lambda: counters[None, :], t0)
        try:
            return await sender.run(t0)
        finally:
            undo()

    try:
        return asyncio.run(main())
    finally:
        undo_realtime()


def _worker(k: int, schedule: Schedule, payloads: Payloads, target: Target,
            options: SenderOptions, shared: Any, pipe: Any) -> None:
    """A sender process: open the pool, report ready, wait for t0, send, return the result."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # until the loop's handler takes over
    if options.realtime:
        enter_realtime()
    counters = np.frombuffer(shared, dtype=np.float64).reshape(-1, len(COUNTERS))[k]

    async def main() -> SendResult:
        sender = OpenLoopSender(schedule, payloads, target, options, counters, process=k)
        await sender.prepare()
        pipe.send("ready")
        loop = asyncio.get_running_loop()
        t0 = await loop.run_in_executor(None, pipe.recv)
        undo = _install_sigint(sender)
        try:
            return await sender.run(t0)
        finally:
            undo()

    try:
        pipe.send(asyncio.run(main()))
    except BaseException as exc:  # report, never hang the parent
        pipe.send(RuntimeError(f"sender process {k} failed: {exc!r}"))
        raise


def _run_spawned(schedule: Schedule, payloads: Payloads, target: Target, options: SenderOptions,
                 n: int, on_start: Callable[..., None] | None) -> list[SendResult]:
    ctx = mp.get_context("spawn")
    shared = ctx.RawArray("d", n * len(COUNTERS))
    view = np.frombuffer(shared, dtype=np.float64).reshape(n, len(COUNTERS))
    pipes, procs = [], []
    for k in range(n):
        here, there = ctx.Pipe()
        share = Payloads(payloads.requests, payloads.index[k::n])
        p = ctx.Process(
            target=_worker, args=(k, schedule.share(k, n), share, target, options, shared, there),
            name=f"loadgen-sender-{k}", daemon=True,
        )
        p.start()
        pipes.append(here)
        procs.append(p)
    results: list[SendResult] = []
    try:
        for k, pipe in enumerate(pipes):
            msg = _recv(pipe, procs[k], 120.0)
            if msg != "ready":
                raise msg if isinstance(msg, BaseException) else RuntimeError(f"worker {k}: {msg!r}")
        t0 = clock() + START_MARGIN_S
        for pipe in pipes:
            pipe.send(t0)
        if on_start is not None:
            on_start(lambda: view.copy(), t0)
        last = float(schedule.times[-1]) if len(schedule) else 0.0
        deadline = t0 + last + options.max_lag + options.timeout + GRACE_S + REPORT_S
        for k, pipe in enumerate(pipes):
            share = schedule.share(k, n)
            while True:
                try:
                    msg = _recv(pipe, procs[k], max(0.0, deadline - clock()), late=True)
                    break
                except KeyboardInterrupt:  # the workers got SIGINT too: they abort and report
                    continue
                except _Late:
                    log.error("sender process %d did not report by the end of the run; "
                              "terminating it", k)
                    procs[k].terminate()
                    msg = lost_share(share, k, f"sender process {k} did not report its results "
                                     "by the end of the run", t0)
                    break
                except RuntimeError as exc:  # it died
                    log.error("%s", exc)
                    msg = lost_share(share, k, f"lost: {exc}", t0)
                    break
            if isinstance(msg, BaseException):
                log.error("sender process %d failed: %s", k, msg)
                msg = lost_share(share, k, f"lost: {msg}", t0)
            results.append(msg)
    finally:
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.terminate()
                p.join()
    return results


def _recv(pipe: Any, proc: Any, timeout: float | None, late: bool = False) -> Any:
    """The next message from a worker; RuntimeError when it died (or, unless ``late``, did not
    answer within ``timeout``), :class:`_Late` when ``late`` and ``timeout`` passed."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while not pipe.poll(0.2):
        if not proc.is_alive():
            with contextlib.suppress(EOFError):
                if pipe.poll(0):
                    return pipe.recv()
            raise RuntimeError(f"{proc.name} exited with code {proc.exitcode}")
        if deadline is not None and time.monotonic() > deadline:
            if late:
                raise _Late(proc.name)
            raise RuntimeError(f"{proc.name} did not get ready in {timeout:g}s")
    try:
        return pipe.recv()
    except EOFError:
        raise RuntimeError(f"{proc.name} closed its pipe without a result") from None
