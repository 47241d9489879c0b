"""The open-loop sender: every request goes out at its intended time, whatever the server does.

How it keeps the schedule:

* The schedule and every request's bytes are fixed before the run (:mod:`.schedule`,
  :mod:`.payloads`); sending is one non-blocking ``transport.write`` on an idle keep-alive
  connection — no task, no encoding, no waiting for an earlier response.
* A timer thread sleeps (``time.sleep``: nanosecond clock, ~50 us slack) until each intended
  time and wakes the event loop (``call_soon_threadsafe``), which sends every request then due.
  The event loop alone would wake late: ``epoll`` timeouts have 1 ms granularity.
* Slow responses only hold their own connection; when no idle connection is left a new one is
  opened (up to ``max_connections``), and beyond that the request waits in a FIFO.  Its latency
  still counts from its intended time.

How it accounts: latency = completion − **intended** send time, and generator lag = actual −
intended send time, per request.  Each scheduled request ends exactly once (:meth:`_finish`) as
``ok`` (2xx), ``rejected`` (503 / 429), ``timeout`` (504 / 408, or no answer within
``timeout`` seconds of its send), ``error`` (connection refused or lost, other statuses) or
``not_sent`` (its send would have been more than ``max_lag`` seconds late, or the run was
aborted first).

How it always ends, whatever the server does (stops reading, stops answering, resets, accepts
nothing): a request's ``timeout`` runs from its first send attempt and covers the connect too,
so every request ends by its intended time + ``max_lag`` + ``timeout``; and a watchdog ends the
run at :meth:`OpenLoopSender.hard_end` (the last intended time + ``max_lag`` + ``timeout`` +
:data:`GRACE_S`) whatever is still open — in flight or still connecting becomes ``timeout``,
unsent ``not_sent`` — so a bug or a wedged connection can delay the end by at most
the grace, never hang the run.  The initial connection pool waits at most
:data:`PREPARE_TIMEOUT_S`.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import logging
import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from servelab.core.config import opt
from servelab.core.requests import STATUSES
from servelab.loadgen.http import HttpConnection
from servelab.loadgen.payloads import Payloads, Target
from servelab.loadgen.schedule import Schedule

log = logging.getLogger(__name__)

clock = time.monotonic
"""The run's clock: CLOCK_MONOTONIC, shared by every process on the machine."""

PENDING = 0
CODE = {s: i + 1 for i, s in enumerate(STATUSES)}
"""Status name -> small integer code used in the result arrays (0 = still pending)."""
OK, REJECTED, TIMEOUT, ERROR, NOT_SENT = (CODE[s] for s in STATUSES)

COUNTERS = ("sent", *STATUSES, "lag_over_1ms", "done", "in_flight")
"""Live counters one sender keeps (for the progress line), in this order."""
_C = {name: i for i, name in enumerate(COUNTERS)}


GRACE_S = 1.0
"""How long after every request should have ended the watchdog ends the run regardless."""
PREPARE_TIMEOUT_S = 1.0
"""Longest wait for the initial connection pool (a server that accepts nothing cannot hold the
start of the run longer)."""


def classify(http_status: int) -> int:
    """HTTP status -> record status code (0 = transport failure -> error)."""
    if 200 <= http_status < 300:
        return OK
    if http_status in (503, 429):
        return REJECTED
    if http_status in (504, 408):
        return TIMEOUT
    return ERROR


@dataclass(frozen=True)
class SenderOptions:
    """How one sender process behaves (the per-process part of ``servelab load``)."""

    timeout: float = opt(30.0, "client timeout in seconds from the send; then status timeout")
    max_lag: float = opt(
        1.0, "a request whose send would be this many seconds late is recorded not_sent"
    )
    connections: int = opt(0, "connections opened before the run per process (0 = auto)")
    max_connections: int = opt(
        4096, "most open connections per process; beyond, requests wait (and lag)"
    )
    realtime: bool = opt(
        False, "run the senders under SCHED_FIFO (needs root or CAP_SYS_NICE): much less lag "
        "on a busy machine"
    )

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ValueError(f"timeout must be > 0, got {self.timeout}")
        if not self.max_lag > 0:
            raise ValueError(f"max_lag must be > 0, got {self.max_lag}")
        if self.connections < 0 or self.max_connections < 1:
            raise ValueError("connections must be >= 0 and max_connections >= 1")

    def initial_connections(self, rate: float) -> int:
        """Connections to open up front: enough for ~20 ms of arrivals, at least 8."""
        n = self.connections or int(min(256, max(8, math.ceil(rate * 0.02) + 8)))
        return min(n, self.max_connections)


@dataclass
class SendResult:
    """What one sender measured, one row per request of its schedule share (absolute clock)."""

    request_id: np.ndarray
    send: np.ndarray  # actual send (or connect attempt) time, NaN = never sent
    end: np.ndarray  # completion / failure time, NaN = never sent
    http_status: np.ndarray  # int32, 0 = none
    status: np.ndarray  # int8 codes, see CODE
    errors: dict[int, str] = field(default_factory=dict)  # row -> message
    t0: float = 0.0
    process: np.ndarray | None = None  # int64 per row: which sender process


class OpenLoopSender:
    """Sends one schedule (or one process's share of it) open loop; see the module docstring."""

    def __init__(
        self, schedule: Schedule, payloads: Payloads, target: Target,
        options: SenderOptions | None = None, counters: np.ndarray | None = None,
        process: int = 0,
    ) -> None:
        self.schedule = schedule
        self.requests = payloads.requests
        self.payload_index = payloads.index.tolist()
        self.target = target
        self.opts = options or SenderOptions()
        self.process = process
        n = self.n = len(schedule)
        self.send_t = np.full(n, math.nan)
        self.sent = np.zeros(n, dtype=bool)  # written to a connection
        self.end_t = np.full(n, math.nan)
        self.http = np.zeros(n, dtype=np.int32)
        self.status = np.zeros(n, dtype=np.int8)
        self.errors: dict[int, str] = {}
        self.counters = counters if counters is not None else np.zeros(len(COUNTERS))
        self.counters[:] = 0
        self.t0 = math.nan
        self.due: list[float] = []
        self.next = 0
        self.remaining = n
        self.idle: list[HttpConnection] = []
        self.n_conns = 0  # open or opening
        self.waiting: collections.deque[int] = collections.deque()  # rows waiting for a connection
        self.deadlines: collections.deque[tuple[float, HttpConnection, int]] = collections.deque()
        self.stopped = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.done: asyncio.Future[None] | None = None
        self._stop_timer = threading.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._conns: set[HttpConnection] = set()

    # -- public ---------------------------------------------------------------------------------
    async def prepare(self) -> None:
        """Open the initial connection pool (failures are logged, not raised)."""
        self.loop = asyncio.get_running_loop()
        rate = len(self.schedule) / self.schedule.duration if self.schedule.duration > 0 else 0.0
        want = self.opts.initial_connections(rate)
        wait = min(self.opts.timeout, PREPARE_TIMEOUT_S)
        results = await asyncio.gather(*(self._open(wait) for _ in range(want)),
                                       return_exceptions=True)
        ok = [c for c in results if isinstance(c, HttpConnection)]
        self.idle.extend(ok)
        if len(ok) < want:
            errs = [r for r in results if isinstance(r, BaseException)]
            log.warning(
                "opened %d of %d connections to %s:%d (%s)", len(ok), want, self.target.host,
                self.target.port, errs[0] if errs else "?",
            )

    async def run(self, t0: float | None = None) -> SendResult:
        """Send the whole schedule with time 0 at ``t0`` (monotonic clock); return what happened."""
        if self.loop is None:
            await self.prepare()
        loop = self.loop
        assert loop is not None
        self.done = loop.create_future()
        self.t0 = t0 if t0 is not None else clock() + 0.01
        self.due = (self.schedule.times + self.t0).tolist()
        if self.n == 0:
            self.done.set_result(None)
        timer = threading.Thread(target=self._timer, name="loadgen-timer", daemon=True)
        timer.start()
        sweep = self._sweep_period()
        handle = loop.call_at(self._loop_time(self.t0 + sweep), self._sweep)
        self._sweep_handle = handle
        watchdog = loop.call_at(self._loop_time(self.hard_end()), self._end_run)
        try:
            await self.done
        finally:
            self._stop_timer.set()
            self._sweep_handle.cancel()
            watchdog.cancel()
            timer.join()
            for c in list(self._conns):
                c.abort()
            for task in list(self._tasks):
                task.cancel()
        self.counters[_C["done"]] = 1
        return SendResult(
            self.schedule.request_id, self.send_t, self.end_t, self.http, self.status,
            self.errors, self.t0, np.full(self.n, self.process, dtype=np.int64),
        )

    def hard_end(self) -> float:
        """When the watchdog ends the run (monotonic clock): by then every request should have
        ended on its own (last intended time + max_lag + timeout), plus :data:`GRACE_S`."""
        last = float(self.schedule.times[-1]) if self.n else 0.0
        return self.t0 + last + self.opts.max_lag + self.opts.timeout + GRACE_S

    def _halt(self) -> float:
        """Stop sending and drop every connection and task; the time it happened."""
        self.stopped = True
        self._stop_timer.set()
        for conn in list(self._conns):
            conn.abort()
        for task in list(self._tasks):
            task.cancel()
        self.next = self.n
        self.waiting.clear()
        return clock()

    def _end_run(self) -> None:
        """The watchdog: end every request still open (see the module docstring)."""
        if self.done is None or self.done.done():
            return
        log.warning("run end reached with %d requests still open; ending them", self.remaining)
        now = self._halt()
        for i in np.flatnonzero(self.status == PENDING).tolist():
            if self.sent[i]:
                self._finish(i, TIMEOUT, now, "no response by the end of the run")
            elif not math.isnan(self.send_t[i]):  # its whole budget has passed: no answer
                self._finish(i, TIMEOUT, now, "connect still pending at the end of the run")
            else:
                self._finish(i, NOT_SENT, math.nan, "the run ended before it was sent")

    def abort(self, reason: str = "run aborted") -> None:
        """Stop sending: unsent requests become not_sent, requests in flight become errors."""
        if self.stopped or self.loop is None:
            return
        log.warning("aborting: %s", reason)
        now = self._halt()
        for i in np.flatnonzero(self.status == PENDING).tolist():
            if math.isnan(self.send_t[i]):
                self._finish(i, NOT_SENT, math.nan, reason)
            else:
                self._finish(i, ERROR, now, f"in flight when the {reason}")

    # -- sending --------------------------------------------------------------------------------
    def _timer(self) -> None:
        """Timer thread: wake the loop at each intended send time."""
        due, n, i = self.due, self.n, 0
        loop = self.loop
        assert loop is not None
        stop = self._stop_timer
        while i < n and not stop.is_set():
            d = due[i] - clock()
            if d > 0:
                time.sleep(min(d, 0.05))
                continue
            try:
                loop.call_soon_threadsafe(self._send_due)
            except RuntimeError:  # loop closed
                return
            i = bisect.bisect_right(due, clock(), i)

    def _send_due(self) -> None:
        due, n = self.due, self.n
        now = clock()
        while self.next < n and due[self.next] <= now and not self.stopped:
            i = self.next
            self.next = i + 1
            try:
                self._dispatch(i, now)
            except Exception as exc:  # never leave a request open: it would hold the run
                log.exception("sending request row %d failed", i)
                if self.status[i] == PENDING:
                    self._finish(i, ERROR, clock(), f"send failed: {exc!r}")
            now = clock()

    def _dispatch(self, i: int, now: float) -> None:
        if now - self.due[i] > self.opts.max_lag:
            self._finish(i, NOT_SENT, math.nan, f"generator {now - self.due[i]:.3f}s behind")
        elif self._idle_connection() is not None:
            self._send(self.idle.pop(), i)
        elif self.n_conns < self.opts.max_connections:
            self._start_connect(i, now)
        else:
            self.waiting.append(i)

    def _idle_connection(self) -> HttpConnection | None:
        """The connection to send on next (the most recently used idle one), if any."""
        while self.idle and self.idle[-1].closed:  # closed, its close not yet processed
            self.idle.pop()
        return self.idle[-1] if self.idle else None

    def _send(self, conn: HttpConnection, i: int, deadline: float | None = None) -> None:
        """Write request ``i`` on ``conn``; it times out at ``deadline`` (default: its send
        time + timeout; after a connect, the attempt's time + timeout)."""
        t = conn.send(i, self.requests[self.payload_index[i]])
        self.send_t[i] = t
        self.sent[i] = True
        c = self.counters
        c[0] += 1
        c[_C["in_flight"]] += 1
        if t - self.due[i] > 1e-3:
            c[_C["lag_over_1ms"]] += 1
        self.deadlines.append((t + self.opts.timeout if deadline is None else deadline, conn, i))

    def _start_connect(self, i: int, now: float) -> None:
        """Open a connection for request ``i`` and send on it; the connection counts against
        ``max_connections`` from now (a burst of sends cannot overshoot it)."""
        self.send_t[i] = now  # the attempt; the actual write time replaces it on connect
        self.n_conns += 1
        self._spawn(self._connect_and_send(i))

    async def _open(self, timeout: float | None = None, reserved: bool = False) -> HttpConnection:
        assert self.loop is not None
        if not reserved:
            self.n_conns += 1
        try:
            _, conn = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: HttpConnection(self._on_done, self._on_closed),
                    self.target.host, self.target.port,
                ),
                self.opts.timeout if timeout is None else max(0.0, timeout),
            )
        except BaseException:
            self.n_conns -= 1
            raise
        self._conns.add(conn)
        return conn

    async def _connect_and_send(self, i: int) -> None:
        deadline = self.send_t[i] + self.opts.timeout  # the request's budget covers the connect
        try:
            conn = await self._open(deadline - clock(), reserved=True)
        except asyncio.TimeoutError:
            if self.status[i] == PENDING:
                self._finish(i, TIMEOUT, clock(),
                             f"connect not established within {self.opts.timeout:g}s")
            self._serve_waiting()
            return
        except Exception as exc:  # refused, reset, EMFILE, ...: this request fails alone
            if self.status[i] == PENDING:
                self._finish(i, ERROR, clock(), f"connect failed: {exc or type(exc).__name__}")
            self._serve_waiting()
            return
        if self.stopped or self.status[i] != PENDING:
            conn.abort()
            return
        try:
            self._send(conn, i, deadline)
        except Exception as exc:
            conn.abort()
            if self.status[i] == PENDING:
                self._finish(i, ERROR, clock(), f"send failed: {exc!r}")

    def _spawn(self, coro: object) -> None:
        assert self.loop is not None
        task: asyncio.Task[None] = self.loop.create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- completion -----------------------------------------------------------------------------
    def _on_done(self, conn: HttpConnection, i: int, http_status: int, t_end: float,
                 detail: object) -> None:
        if self.status[i] != PENDING:  # already ended (timeout or abort): ignore
            return
        self.http[i] = http_status
        code = classify(http_status) if http_status else ERROR
        if code == ERROR:
            self.errors[i] = str(detail) if not http_status else f"HTTP {http_status}"
        self._finish(i, code, t_end)
        if conn.idle and not self.stopped:
            self._reuse(conn)

    def _reuse(self, conn: HttpConnection) -> None:
        while self.waiting:
            i = self.waiting.popleft()
            now = clock()
            if now - self.due[i] > self.opts.max_lag:
                self._finish(i, NOT_SENT, math.nan, f"waited {now - self.due[i]:.3f}s for a connection")
                continue
            try:
                self._send(conn, i)
            except Exception as exc:
                conn.abort()
                self._finish(i, ERROR, clock(), f"send failed: {exc!r}")
            return
        self.idle.append(conn)

    def _on_closed(self, conn: HttpConnection) -> None:
        self._conns.discard(conn)
        self.n_conns -= 1
        try:
            self.idle.remove(conn)
        except ValueError:
            pass
        self._serve_waiting()

    def _serve_waiting(self) -> None:
        """Open connections for requests waiting in the FIFO, if there is room now."""
        while self.waiting and not self.stopped and self.n_conns < self.opts.max_connections:
            i = self.waiting.popleft()
            now = clock()
            if now - self.due[i] > self.opts.max_lag:
                self._finish(i, NOT_SENT, math.nan, f"waited {now - self.due[i]:.3f}s for a connection")
                continue
            self._start_connect(i, now)

    def _finish(self, i: int, code: int, t_end: float, error: str | None = None) -> None:
        if self.status[i] != PENDING:
            raise AssertionError(f"request row {i} ended twice")
        self.status[i] = code
        self.end_t[i] = t_end
        if error is not None:
            self.errors[i] = error
        self.counters[code] += 1  # counters 1..5 are the statuses, in order
        if self.sent[i]:
            self.counters[_C["in_flight"]] -= 1
        self.remaining -= 1
        if self.remaining == 0 and self.done is not None and not self.done.done():
            self.done.set_result(None)

    def _sweep_period(self) -> float:
        return min(0.01, self.opts.timeout / 4)

    def _loop_time(self, t: float) -> float:
        assert self.loop is not None
        return t - clock() + self.loop.time()

    def _sweep(self) -> None:
        """Every few ms: time out requests in flight too long, give up on stale waiters."""
        try:
            self._sweep_once()
        finally:  # an error here must not stop the sweeping (the run would never end)
            assert self.loop is not None
            if self.done is not None and not self.done.done():
                self._sweep_handle = self.loop.call_later(self._sweep_period(), self._sweep)

    def _sweep_once(self) -> None:
        now = clock()
        dq = self.deadlines
        while dq and dq[0][0] <= now:
            _, conn, i = dq.popleft()
            if conn.rid == i and self.status[i] == PENDING:
                conn.abort()
                self._finish(i, TIMEOUT, now, f"no response within {self.opts.timeout:g}s")
        while self.waiting and now - self.due[self.waiting[0]] > self.opts.max_lag:
            i = self.waiting.popleft()
            self._finish(i, NOT_SENT, math.nan, f"waited {now - self.due[i]:.3f}s for a connection")
