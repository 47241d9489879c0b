"""A small open-loop HTTP/1.1 client for the server benchmark (``servelab bench serve``).

Requests leave at their scheduled times (Poisson arrivals at a fixed rate) whether or not
earlier ones have been answered — open loop, so a slow server meets a growing backlog instead of
a politely waiting client (no coordinated omission).  One asyncio loop, raw keep-alive
connections (a new one whenever all are busy, up to ``max_conns``), request bytes encoded once
up front: the client spends tens of microseconds per request, which matters on a 2-core machine
where it shares the CPU with the server it measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Sent:
    """One request as the client saw it (seconds on the client's monotonic clock)."""

    index: int
    intended: float
    sent: float = float("nan")
    end: float = float("nan")
    status: int = 0
    error: str = ""


@dataclass
class LoadResult:
    rate: float
    duration: float
    requests: list[Sent] = field(default_factory=list)
    t0: float = 0.0
    client_cpu_s: float = 0.0

    def latencies(self, ok_only: bool = True) -> np.ndarray:
        return np.array([r.end - r.intended for r in self.requests
                         if (r.status == 200 or not ok_only) and r.end == r.end])

    def summary(self) -> dict[str, Any]:
        n = len(self.requests)
        ok = [r for r in self.requests if r.status == 200]
        lat = self.latencies()
        span = max((r.end for r in ok), default=0.0)
        statuses: dict[str, int] = {}
        for r in self.requests:
            key = str(r.status) if r.status else (r.error or "no answer")
            statuses[key] = statuses.get(key, 0) + 1
        return {
            "offered_rps": self.rate, "sent": n, "sent_rps": n / self.duration, "ok": len(ok),
            "achieved_rps": len(ok) / max(span, self.duration) if ok else 0.0,
            "error_rate": 1 - len(ok) / n if n else 0.0,
            "p50_ms": float(np.percentile(lat, 50) * 1000) if len(lat) else float("nan"),
            "p90_ms": float(np.percentile(lat, 90) * 1000) if len(lat) else float("nan"),
            "p99_ms": float(np.percentile(lat, 99) * 1000) if len(lat) else float("nan"),
            "mean_ms": float(lat.mean() * 1000) if len(lat) else float("nan"),
            "max_send_lag_ms": float(max((r.sent - r.intended for r in self.requests
                                          if r.sent == r.sent), default=0.0) * 1000),
            "statuses": statuses, "client_cpu_s": self.client_cpu_s,
        }


def build_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "content-length"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, close, chunked = 0, False, False
    for line in lines[1:]:
        k, _, v = line.partition(":")
        k = k.strip().lower()
        if k == "content-length":
            length = int(v)
        elif k == "connection" and v.strip().lower() == "close":
            close = True
        elif k == "transfer-encoding" and "chunked" in v.lower():
            chunked = True
    if chunked:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
        return status, body, close
    return status, await reader.readexactly(length), close


class Client:
    """Keep-alive connections to one server, reused across load steps."""

    def __init__(self, host: str, port: int, max_conns: int = 512, timeout: float = 60.0):
        self.host, self.port = host, port
        self.max_conns = max_conns
        self.timeout = timeout
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.open = 0
        self._slots: asyncio.Semaphore | None = None

    async def _conn(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.idle:
            return self.idle.pop()
        self.open += 1
        try:
            return await asyncio.open_connection(self.host, self.port)
        except BaseException:
            self.open -= 1
            raise

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_conns)
        async with self._slots:
            reader, writer = await self._conn()
            try:
                writer.write(raw)
                status, body, close = await asyncio.wait_for(_read_response(reader), self.timeout)
            except BaseException:
                self.open -= 1
                writer.close()
                raise
            if close:
                self.open -= 1
                writer.close()
            else:
                self.idle.append((reader, writer))
            return status, body

    async def close(self) -> None:
        for _, w in self.idle:
            w.close()
            with contextlib.suppress(Exception):
                await w.wait_closed()
        self.idle.clear()

    async def open_loop(self, payloads: list[bytes], rate: float, duration: float,
                        seed: int = 0) -> LoadResult:
        """Send Poisson arrivals at ``rate`` per second for ``duration`` seconds."""
        import psutil

        rng = np.random.default_rng(seed)
        n = max(1, int(rate * duration * 1.2) + 10)
        times = np.cumsum(rng.exponential(1.0 / rate, n))
        times = times[times < duration]
        res = LoadResult(rate, duration)
        cpu0 = sum(psutil.Process().cpu_times()[:2])
        loop = asyncio.get_running_loop()
        t0 = res.t0 = loop.time()

        async def one(s: Sent, raw: bytes) -> None:
            s.sent = loop.time() - t0
            try:
                s.status, _ = await self.request(raw)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                s.error = type(exc).__name__
            except (TimeoutError, asyncio.TimeoutError):  # distinct before Python 3.11
                s.error = "timeout"
            s.end = loop.time() - t0

        tasks = []
        for i, t in enumerate(times):
            delay = t0 + t - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            s = Sent(i, float(t))
            res.requests.append(s)
            tasks.append(asyncio.create_task(one(s, payloads[i % len(payloads)])))
        if tasks:
            await asyncio.wait(tasks, timeout=self.timeout + 5)
        for tk in tasks:
            tk.cancel()
        res.t0 = 0.0
        res.client_cpu_s = sum(psutil.Process().cpu_times()[:2]) - cpu0
        return res

    async def closed_loop(self, payloads: list[bytes], n: int) -> np.ndarray:
        """``n`` requests one after another on one connection: seconds each (status 200)."""
        out = []
        for i in range(n):
            t = time.perf_counter()
            status, body = await self.request(payloads[i % len(payloads)])
            if status != 200:
                raise RuntimeError(f"closed-loop request failed: {status} {body[:200]!r}")
            out.append(time.perf_counter() - t)
        return np.array(out)
