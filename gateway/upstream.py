"""Keep-alive HTTP/1.1 connections from the gateway to one backend, one request at a time.

The gateway relays bytes: a request goes out as the client sent it (one ``write``), and the
backend's response comes back raw, headers and all, to be written to the client as is.  The
load generator's :class:`~servelab.loadgen.http.ResponseParser` only tells where the response
ends (``Content-Length``, chunked, or close).  No per-request framework, no header objects: the
gateway's added latency is a few ``write`` calls and this parse.
"""

from __future__ import annotations

import asyncio
from collections import deque

from servelab.loadgen.http import ProtocolError, ResponseParser


class UpstreamError(ConnectionError):
    """The backend could not be reached or dropped the connection before a full response:
    the request may be retried elsewhere (inference is idempotent)."""


class UpstreamConnection(asyncio.Protocol):
    """One connection to a backend; :meth:`request` sends raw bytes and returns the raw
    response with its status and whether the connection stays open."""

    def __init__(self) -> None:
        self.parser = ResponseParser()
        self.transport: asyncio.Transport | None = None
        self.chunks: list[bytes] = []
        self.waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self.closed = False

    async def request(self, data: bytes) -> tuple[int, bytes, bool]:
        """``(status, raw response, keep_alive)``; :class:`UpstreamError` if the connection
        fails first."""
        if self.closed or self.transport is None:
            raise UpstreamError("connection already closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        try:
            done = self.parser.feed(data)
        except (ProtocolError, ValueError) as exc:
            self._fail(f"bad response from the backend: {exc}")
            return
        if done is not None:
            self._complete(done[0], done[2])

    def eof_received(self) -> bool | None:
        done = self.parser.eof()
        if done is not None:
            self._complete(done[0], False)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(f"backend connection lost: {exc}" if exc else "backend closed the connection")

    def _complete(self, status: int, keep_alive: bool) -> None:
        raw = b"".join(self.chunks)
        self.chunks = []
        if not keep_alive:
            self.close()
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((status, raw, keep_alive))

    def _fail(self, why: str) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(UpstreamError(why))


class UpstreamPool:
    """Idle keep-alive connections to one ``host:port`` (LIFO: the warmest first), capped at
    ``max_idle``; a request takes one or opens a new one."""

    def __init__(self, host: str, port: int, max_idle: int = 512) -> None:
        self.host, self.port = host, port
        self.max_idle = max_idle
        self.idle: deque[UpstreamConnection] = deque()

    async def request(self, data: bytes) -> tuple[int, bytes, bool]:
        """Send one request; ``(status, raw response, keep_alive)``.  When a reused connection
        fails before any response byte (the backend had closed it while idle), the request is
        sent once more on a fresh connection."""
        while self.idle:
            conn = self.idle.pop()
            if conn.closed:
                continue
            try:
                return self._done(conn, await conn.request(data))
            except UpstreamError:
                if conn.parser.buf or conn.chunks:
                    raise  # it failed mid-response: the backend did see the request
                break
        conn = await self._connect()
        return self._done(conn, await conn.request(data))

    def _done(self, conn: UpstreamConnection,
              out: tuple[int, bytes, bool]) -> tuple[int, bytes, bool]:
        if out[2] and not conn.closed and len(self.idle) < self.max_idle:
            self.idle.append(conn)
        elif not conn.closed:
            conn.close()
        return out

    async def _connect(self) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(UpstreamConnection, self.host, self.port)
        except OSError as exc:
            raise UpstreamError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        return conn

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()
