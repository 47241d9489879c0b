"""A minimal HTTP/1.1 client transport for the load generator: keep-alive, no pipelining.

General-purpose clients spend hundreds of microseconds of Python per request; at thousands of
requests per second on two cores that cost becomes generator lag.  Here a request is one
``transport.write`` of prebuilt bytes and a response is parsed just far enough to know its
status and where it ends (``Content-Length``, chunked, or until close).  The completion time is
read the moment the last byte arrives, in ``data_received``.

One :class:`HttpConnection` carries one request at a time; the caller owns the pool.  When a
response completes or the connection fails, the connection calls ``on_done(conn, rid, status,
t_end, detail)`` once: ``status`` is the HTTP status, or 0 for a transport failure (``detail``
then says why); ``detail`` is the body when ``keep_body`` is set, else ``b""``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

OnDone = Callable[["HttpConnection", int, int, float, Any], None]

_MAX_HEAD = 64 * 1024


class ProtocolError(Exception):
    """The peer sent something that is not an HTTP/1.1 response."""


class ResponseParser:
    """Incremental HTTP/1.1 response parser (one response at a time).

    :meth:`feed` returns ``None`` until a response is complete, then ``(status, body,
    keep_alive)``; bytes after the response are an error (nothing was pipelined).
    """

    __slots__ = ("buf", "state", "status", "remaining", "keep_alive", "keep_body", "body")

    def __init__(self, keep_body: bool = False) -> None:
        self.keep_body = keep_body
        self.reset()

    def reset(self) -> None:
        self.buf = bytearray()
        self.state = 0  # 0 head, 1 length-delimited body, 2 chunked, 3 until close
        self.status = 0
        self.remaining = 0
        self.keep_alive = True
        self.body = bytearray()

    def feed(self, data: bytes) -> tuple[int, bytes, bool] | None:
        self.buf += data
        if self.state == 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > _MAX_HEAD:
                    raise ProtocolError("response head too large")
                return None
            self._parse_head(bytes(self.buf[:end]))
            del self.buf[: end + 4]
        if self.state == 1:
            if len(self.buf) < self.remaining:
                return None
            if len(self.buf) > self.remaining:
                raise ProtocolError("unexpected bytes after the response")
            return self._finish(bytes(self.buf))
        if self.state == 2:
            return self._feed_chunked()
        return None  # until close: see eof()

    def eof(self) -> tuple[int, bytes, bool] | None:
        """The connection closed: a read-until-close response ends here, any other is cut."""
        if self.state == 3:
            self.keep_alive = False
            return self._finish(bytes(self.buf))
        return None

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        first = lines[0].split(b" ", 2)
        if len(first) < 2 or not first[0].startswith(b"HTTP/1.") or not first[1].isdigit():
            raise ProtocolError(f"bad status line {lines[0][:80]!r}")
        self.status = int(first[1])
        self.keep_alive = first[0] != b"HTTP/1.0"
        length = None
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            value = value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = value.endswith(b"chunked")
            elif name == b"connection":
                if value == b"close":
                    self.keep_alive = False
                elif value == b"keep-alive":
                    self.keep_alive = True
        if self.status in (204, 304) or 100 <= self.status < 200:
            self.state, self.remaining = 1, 0
        elif chunked:
            self.state, self.remaining = 2, -1
        elif length is not None:
            self.state, self.remaining = 1, length
        else:
            self.state = 3

    def _feed_chunked(self) -> tuple[int, bytes, bool] | None:
        buf = self.buf
        while True:
            if self.remaining < 0:  # expecting a chunk-size line
                eol = buf.find(b"\r\n")
                if eol < 0:
                    return None
                size = int(bytes(buf[:eol]).split(b";", 1)[0].strip() or b"0", 16)
                del buf[: eol + 2]
                if size == 0:
                    self.remaining = -2
                else:
                    self.remaining = size
            if self.remaining == -2:  # trailers until an empty line
                eol = buf.find(b"\r\n")
                if eol < 0:
                    return None
                line = bytes(buf[:eol])
                del buf[: eol + 2]
                if not line:
                    if buf:
                        raise ProtocolError("unexpected bytes after the response")
                    return self._finish(bytes(self.body))
                continue
            if len(buf) < self.remaining + 2:
                return None
            if self.keep_body:
                self.body += buf[: self.remaining]
            del buf[: self.remaining + 2]
            self.remaining = -1

    def _finish(self, body: bytes) -> tuple[int, bytes, bool]:
        out = (self.status, body if self.keep_body else b"", self.keep_alive)
        self.reset()
        return out


class HttpConnection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self, on_done: OnDone, on_closed: Callable[[HttpConnection], None] | None = None,
                 keep_body: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        self.on_done = on_done
        self.on_closed = on_closed
        self.parser = ResponseParser(keep_body)
        self.clock = clock
        self.transport: asyncio.Transport | None = None
        self.rid = -1  # the request in flight, -1 = idle
        self.closed = False
        self.sent_at = 0.0

    # -- used by the owner -----------------------------------------------------------------------
    def send(self, rid: int, data: bytes) -> float:
        """Write one request; returns the send time (read just before the write)."""
        self.rid = rid
        t = self.sent_at = self.clock()
        assert self.transport is not None
        self.transport.write(data)
        return t

    def abort(self) -> None:
        """Drop the connection without reporting the request in flight (the owner did)."""
        self.rid = -1
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    @property
    def idle(self) -> bool:
        return self.rid < 0 and not self.closed

    # -- asyncio.Protocol -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            done = self.parser.feed(data)
        except (ProtocolError, ValueError) as exc:
            self._fail(f"protocol error: {exc}")
            return
        if done is not None:
            status, body, keep_alive = done
            rid, self.rid = self.rid, -1
            if not keep_alive:
                self.closed = True
                assert self.transport is not None
                self.transport.close()
            if rid >= 0:
                self.on_done(self, rid, status, self.clock(), body)

    def eof_received(self) -> bool | None:
        done = self.parser.eof()
        if done is not None and self.rid >= 0:
            status, body, _ = done
            rid, self.rid = self.rid, -1
            self.closed = True
            self.on_done(self, rid, status, self.clock(), body)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.rid >= 0:
            why = f"connection lost: {exc}" if exc else "connection closed by the server"
            self._fail(why)
        if self.on_closed is not None:
            self.on_closed(self)

    def _fail(self, why: str) -> None:
        rid, self.rid = self.rid, -1
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        if rid >= 0:
            self.on_done(self, rid, 0, self.clock(), why)
