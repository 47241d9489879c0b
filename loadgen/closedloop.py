"""A naive closed-loop driver, kept to show what the open-loop generator fixes.

``users`` clients walk the same schedule; each waits for its previous response before it
sends the next request (at the request's intended time, or at once if that has passed) and
times it from the *actual* send.  This is how most load tools (and Locust) measure.  When the
server stalls, every client is stuck on one request, the requests that should have arrived
during the stall are sent late — after it — and each is timed from its late send: the stall
shows up in a handful of samples instead of in all the requests it delayed (coordinated
omission).  Use :mod:`servelab.loadgen.generator` for measurements.
"""

from __future__ import annotations

import asyncio
import math

import numpy as np

from servelab.loadgen.generator import ERROR, TIMEOUT, SendResult, classify, clock
from servelab.loadgen.http import HttpConnection
from servelab.loadgen.payloads import Payloads, Target
from servelab.loadgen.schedule import Schedule


async def run_closed_loop(
    schedule: Schedule, payloads: Payloads, target: Target, users: int = 1,
    timeout: float = 30.0,
) -> SendResult:
    """Drive ``schedule`` closed loop with ``users`` clients; rows as in :class:`SendResult`."""
    if users < 1:
        raise ValueError(f"users must be >= 1, got {users}")
    loop = asyncio.get_running_loop()
    n = len(schedule)
    send = np.full(n, math.nan)
    end = np.full(n, math.nan)
    http = np.zeros(n, dtype=np.int32)
    status = np.zeros(n, dtype=np.int8)
    errors: dict[int, str] = {}
    requests, index = payloads.requests, payloads.index.tolist()
    times = schedule.times.tolist()
    cursor = iter(range(n))
    t0 = clock() + 0.02

    async def user() -> None:
        conn: HttpConnection | None = None
        waiter: asyncio.Future[tuple[int, float, object]] | None = None

        def on_done(_c: HttpConnection, _rid: int, code: int, t_end: float, detail: object) -> None:
            if waiter is not None and not waiter.done():
                waiter.set_result((code, t_end, detail))

        for i in cursor:
            delay = t0 + times[i] - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            if conn is None or conn.closed:
                try:
                    _, conn = await loop.create_connection(
                        lambda: HttpConnection(on_done), target.host, target.port
                    )
                except OSError as exc:
                    send[i] = end[i] = clock()
                    status[i], errors[i] = ERROR, f"connect failed: {exc}"
                    conn = None
                    continue
            waiter = loop.create_future()
            send[i] = conn.send(i, requests[index[i]])
            try:
                code, t_end, detail = await asyncio.wait_for(waiter, timeout)
            except asyncio.TimeoutError:
                conn.abort()
                end[i], status[i] = clock(), TIMEOUT
                continue
            end[i], http[i] = t_end, code
            status[i] = classify(code) if code else ERROR
            if not code:
                errors[i] = str(detail)
        if conn is not None:
            conn.abort()

    await asyncio.gather(*(user() for _ in range(users)))
    return SendResult(schedule.request_id, send, end, http, status, errors, t0,
                      np.zeros(n, dtype=np.int64))


def naive_latency(result: SendResult) -> np.ndarray:
    """What a closed-loop tool reports: completion − *actual* send, per request."""
    return result.end - result.send
