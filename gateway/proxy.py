"""The gateway's front: one OIP v2 endpoint, an asyncio HTTP/1.1 server relaying to a backend.

Per request the gateway parses just the request head (method, path, ``Content-Length`` or a
chunked body, which it reassembles, ``Connection``), reads the body within ``read_timeout_s``
of its first byte (else 408 and the connection is closed), and writes the raw bytes to a keep-alive connection of the
backend that serves now (:class:`~servelab.gateway.upstream.UpstreamPool`); the backend's raw
response goes back as is.  No web framework runs per request.  Requests on one client
connection are answered in order (pipelined ones wait their turn).

Answered by the gateway itself: ``/v2/health/live``, ``/v2/health/ready`` (200 once a backend
serves), ``/metrics`` (the gateway's Prometheus registry), ``/servelab/meta`` (current arm,
per-arm estimates, switch history with reasons), ``/servelab/timeseries`` (recent windows),
``/dashboard`` and its assets.  Everything else — inference, model metadata, the backend's
``/servelab/stats`` — goes to the current backend.

No request is lost to a switch: the :class:`Router` (the controller) names the backend per
request; a request already sent to the old backend finishes there (the old backend is stopped
only once the gateway has nothing in flight to it).  A request whose backend connection fails,
or which a retiring backend refuses with 503, is retried once on the current backend
(inference is idempotent); only if that fails too is it answered 502.

Overload is refused at the gateway's own door: while as many inference requests are in flight
through it as the serving backend admits (``queue_capacity + workers x max_batch`` of its
config, or ``max_inflight``), a new one is answered ``503`` with ``Retry-After`` at once,
before it reaches the backend — so neither the backend's HTTP front nor the gateway's
connections fill, and the refusal costs the gateway one write.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol
from urllib.parse import parse_qs

from servelab.gateway.backends import Backend
from servelab.gateway.metrics import GatewayMetrics
from servelab.gateway.upstream import UpstreamError
from servelab.gateway.windows import WindowCollector

log = logging.getLogger(__name__)

INFER_PATH = re.compile(rb"^/v2/models/([^/?]+)(?:/versions/[^/?]+)?/infer(?:\?|$)")
MAX_HEAD = 64 * 1024
READ_TIMEOUT_S = 30.0
"""Seconds a client has from a request's first byte to its last (the servers' own limit)."""
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 411: "Length Required", 413: "Payload Too Large", 502: "Bad Gateway",
           503: "Service Unavailable"}
ASSETS = {"/dashboard": ("dashboard.html", "text/html; charset=utf-8"),
          "/dashboard/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
          "/dashboard/dashboard.css": ("dashboard.css", "text/css; charset=utf-8")}


class Router(Protocol):
    """What the front asks per request (the controller implements it)."""

    collector: WindowCollector

    @property
    def current(self) -> Backend | None: ...

    def meta(self) -> dict[str, Any]: ...

    def timeseries(self, n: int) -> list[dict[str, Any]]: ...


def response(status: int, body: bytes, content_type: str = "application/json",
             close: bool = False, extra: str = "") -> bytes:
    head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\nContent-Type: {content_type}"
            f"\r\nContent-Length: {len(body)}\r\n{extra}")
    if close:
        head += "Connection: close\r\n"
    return head.encode() + b"\r\n" + body


def json_response(status: int, obj: Any, close: bool = False) -> bytes:
    return response(status, json.dumps(obj, allow_nan=False).encode(), close=close)


def error(status: int, message: str, close: bool = False) -> bytes:
    return json_response(status, {"error": message}, close)


@dataclass(slots=True)
class HttpRequest:
    """One parsed client request: raw bytes to forward plus what routing needs."""

    method: bytes
    target: bytes
    raw: bytes
    body_len: int
    keep_alive: bool


class RequestParser:
    """Incremental HTTP/1.1 request parser: bytes in, complete :class:`HttpRequest` out.

    A body comes with ``Content-Length`` or ``Transfer-Encoding: chunked``; a chunked one is
    reassembled here (chunk extensions and trailers dropped) and forwarded with a
    ``Content-Length``, so every backend sees one form.  ``Expect: 100-continue`` is answered
    by the gateway (``continue_`` is set) and the header is not forwarded.  Raises
    ``ValueError`` (message, status) on a malformed head or chunk, 413 past ``max_body``.
    ``partial``: bytes of a request not yet complete are held (the front's read deadline).
    """

    def __init__(self, max_body: int) -> None:
        self.max_body = max_body
        self.buf = bytearray()
        self.head: HttpRequest | None = None
        self.need = 0
        self.continue_ = False
        self.chunks: bytearray | None = None  # the body so far of a chunked request
        self.chunk_left = -1  # bytes left of the current chunk (+2 for its CRLF); -1: a size line

    @property
    def partial(self) -> bool:
        return self.head is not None or bool(self.buf)

    def feed(self, data: bytes) -> list[HttpRequest]:
        self.buf += data
        out: list[HttpRequest] = []
        while True:
            if self.head is None:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buf) > MAX_HEAD:
                        raise ValueError("request head too large", 400)
                    return out
                self._parse_head(bytes(self.buf[:end + 4]))
                del self.buf[:end + 4]
            assert self.head is not None
            if self.chunks is not None:
                if not self._read_chunks():
                    return out
                body, self.chunks = bytes(self.chunks), None
                req = self.head
                req.raw = req.raw[:-2] + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
                req.body_len = len(body)
            else:
                if len(self.buf) < self.need:
                    return out
                req = self.head
                req.raw += bytes(self.buf[:self.need])
                del self.buf[:self.need]
            self.head, self.need = None, 0
            out.append(req)

    def _read_chunks(self) -> bool:
        """Consume chunk framing from ``buf`` into ``chunks``; True once the last chunk (and
        any trailer) has arrived."""
        assert self.chunks is not None
        while True:
            if self.chunk_left < 0:  # a size line, or after the last chunk the trailer
                end = self.buf.find(b"\r\n")
                if end < 0:
                    if len(self.buf) > MAX_HEAD:
                        raise ValueError("chunk size line too long", 400)
                    return False
                line = bytes(self.buf[:end]).split(b";", 1)[0].strip()
                try:
                    size = int(line, 16)
                except ValueError:
                    raise ValueError(f"bad chunk size {line[:20]!r}", 400) from None
                if size < 0:
                    raise ValueError("bad chunk size", 400)
                if size == 0:
                    trailer = self.buf.find(b"\r\n\r\n", end)  # == end: no trailer fields
                    if trailer < 0:
                        if len(self.buf) > MAX_HEAD:
                            raise ValueError("chunked trailer too large", 400)
                        return False
                    del self.buf[:trailer + 4]  # trailers are dropped
                    return True
                if len(self.chunks) + size > self.max_body:
                    raise ValueError(f"request body exceeds the {self.max_body}-byte cap", 413)
                del self.buf[:end + 2]
                self.chunk_left = size + 2
            if len(self.buf) < self.chunk_left:
                return False
            if self.buf[self.chunk_left - 2:self.chunk_left] != b"\r\n":
                raise ValueError("chunk data not followed by CRLF", 400)
            self.chunks += self.buf[:self.chunk_left - 2]
            del self.buf[:self.chunk_left]
            self.chunk_left = -1

    def _parse_head(self, head: bytes) -> None:
        line, _, rest = head.partition(b"\r\n")
        parts = line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            raise ValueError(f"bad request line {line[:80]!r}", 400)
        method, target, version = parts
        keep_alive = version != b"HTTP/1.0"
        length = 0
        chunked = False
        kept = [line]
        for h in rest.split(b"\r\n"):
            if not h:
                continue
            name, _, value = h.partition(b":")
            lname, v = name.strip().lower(), value.strip().lower()
            if lname == b"content-length":
                if not v.isdigit():
                    raise ValueError("bad Content-Length", 400)
                length = int(v)
            elif lname == b"transfer-encoding" and v != b"identity":
                if v != b"chunked":
                    raise ValueError(f"transfer coding {v.decode('latin-1')!r} is not "
                                     "supported: send Content-Length or chunked", 411)
                chunked = True
                continue  # reassembled here: the backend gets a Content-Length
            elif lname == b"connection":
                keep_alive = v != b"close" if keep_alive else v == b"keep-alive"
            elif lname == b"expect":
                self.continue_ = v == b"100-continue"
                continue  # answered here, never forwarded
            kept.append(h)
        if chunked:  # RFC 9112 6.3: a chunked coding overrides any Content-Length
            length = 0
            kept = [h for h in kept if not h.lower().startswith(b"content-length:")]
        elif length > self.max_body:
            raise ValueError(f"request body of {length} bytes exceeds the {self.max_body}-byte "
                             f"cap", 413)
        raw = head if len(kept) == head.count(b"\r\n") - 1 else b"\r\n".join(kept) + b"\r\n\r\n"
        self.head = HttpRequest(method, target, raw, length, keep_alive)
        self.need = length
        self.chunks, self.chunk_left = (bytearray(), -1) if chunked else (None, -1)


class GatewayProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(self, gateway: GatewayServer) -> None:
        self.gw = gateway
        self.parser = RequestParser(gateway.max_body)
        self.transport: asyncio.Transport | None = None
        self.queue: deque[HttpRequest] = deque()
        self.busy = False
        self.closing = False
        self.deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            reqs = self.parser.feed(data)
        except ValueError as exc:
            message, status = exc.args
            self._write(error(status, message, close=True), close=True)
            return
        self._arm_deadline(restart=bool(reqs))
        if self.parser.continue_ and self.parser.head is not None:
            self.parser.continue_ = False
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.queue.extend(reqs)
        if not self.busy and self.queue:
            self._next()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self.deadline is not None:
            self.deadline.cancel()

    def _arm_deadline(self, restart: bool) -> None:
        """A request has ``read_timeout_s`` from its first byte to its last (a client that
        trickles its head or body is answered 408 and closed, as the servers do)."""
        if restart and self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        if not self.parser.partial:
            if self.deadline is not None:
                self.deadline.cancel()
                self.deadline = None
        elif self.deadline is None and self.gw.read_timeout_s > 0:
            self.deadline = asyncio.get_running_loop().call_later(
                self.gw.read_timeout_s, self._read_timed_out)

    def _read_timed_out(self) -> None:
        self.deadline = None
        if self.parser.partial and not self.closing:
            self.gw.metrics.read_timeouts.inc()
            self._write(error(408, f"request not received within {self.gw.read_timeout_s:g} s",
                              close=True), close=True)

    def _next(self) -> None:
        req = self.queue.popleft()
        local = self.gw.local(req)
        if local is not None:
            self._write(local, close=not req.keep_alive)
            if self.queue and not self.closing:
                self._next()
            return
        self.busy = True
        task = asyncio.get_running_loop().create_task(self._forward(req))
        self.gw.tasks.add(task)  # the loop holds tasks weakly
        task.add_done_callback(self.gw.tasks.discard)

    async def _forward(self, req: HttpRequest) -> None:
        """Relay ``req`` and write its answer from this task (no extra loop iteration)."""
        try:
            raw, keep_alive = await self.gw.forward(req)
        finally:
            self.busy = False
        self._write(raw, close=not (req.keep_alive and keep_alive))
        if self.queue and not self.closing:
            self._next()

    def _write(self, data: bytes, close: bool) -> None:
        if self.transport is None or self.closing:
            return
        self.transport.write(data)
        if close:
            self.closing = True
            self.transport.close()


class GatewayServer:
    """The front server over a :class:`Router`; :meth:`start` binds, :meth:`close` stops."""

    def __init__(self, router: Router, metrics: GatewayMetrics, max_body: int = 16 << 20,
                 max_inflight: int | None = None, read_timeout_s: float = READ_TIMEOUT_S,
                 ) -> None:
        if max_inflight is not None and max_inflight < 0:
            raise ValueError(f"max_inflight must be >= 0, got {max_inflight}")
        self.router = router
        self.metrics = metrics
        self.max_body = max_body
        self.max_inflight = max_inflight  # None: what the serving backend admits; 0: no cap
        self.read_timeout_s = read_timeout_s  # first byte to last of one request; 0: none
        self.inflight = 0
        self.refused = 0
        self.server: asyncio.base_events.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.port = 0
        self.assets = {path: (resources.files("servelab.gateway").joinpath("static", name)
                              .read_bytes(), ctype) for path, (name, ctype) in ASSETS.items()}
        self.local_routes: dict[bytes, Callable[[bytes], bytes]] = {
            b"/v2/health/live": lambda q: json_response(200, {"live": True}),
            b"/v2/health/ready": self._ready,
            b"/metrics": lambda q: response(200, metrics.exposition(), metrics.content_type),
            b"/servelab/meta": lambda q: json_response(200, router.meta()),
            b"/servelab/timeseries": self._timeseries,
        }

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> GatewayServer:
        from servelab.servers.base import bind

        sock = bind(host, port)
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: GatewayProtocol(self), sock=sock)
        self.port = sock.getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    # -- answered here -------------------------------------------------------------------------
    def local(self, req: HttpRequest) -> bytes | None:
        """The gateway's own answer, or None: forward."""
        path, _, query = req.target.partition(b"?")
        route = self.local_routes.get(path)
        if route is not None:
            if req.method != b"GET":
                return error(405, f"method {req.method.decode()} not allowed on {path.decode()}")
            return route(query)
        asset = self.assets.get(path.decode("latin-1").rstrip("/") or "/")
        if asset is not None:
            return response(200, asset[0], asset[1], extra="Cache-Control: no-cache\r\n")
        return None

    def _ready(self, query: bytes) -> bytes:
        b = self.router.current
        ok = b is not None and b.state == "ready"
        return json_response(200 if ok else 503, {"ready": ok})

    def _timeseries(self, query: bytes) -> bytes:
        q = parse_qs(query.decode("latin-1"))
        try:
            n = int(q.get("n", ["300"])[0])
        except ValueError:
            return error(400, "n must be an integer")
        return json_response(200, self.router.timeseries(max(1, min(n, 3600))))

    # -- forwarded -----------------------------------------------------------------------------
    def capacity(self, backend: Backend | None) -> int | None:
        """Inference requests the gateway lets in flight at once while ``backend`` serves
        (None: no cap)."""
        if self.max_inflight is not None:
            return self.max_inflight or None
        c = getattr(backend, "config", None)
        if c is None:
            return None
        return int(c.queue_capacity + c.workers * c.max_batch)

    async def forward(self, req: HttpRequest) -> tuple[bytes, bool]:
        """Relay ``req`` to the current backend (retrying once, see the module docstring);
        the raw response and whether the connection stays open."""
        m = INFER_PATH.match(req.target) if req.method == b"POST" else None
        model = m.group(1).decode("latin-1") if m else ""
        collector = self.router.collector
        rid = collector.arrived(model, req.body_len) if m else 0
        first = self.router.current
        if m:
            cap = self.capacity(first)
            if cap is not None and self.inflight >= cap:
                self.refused += 1
                status, raw, keep_alive = 503, response(
                    503, json.dumps({"error": f"gateway at capacity ({cap} requests in "
                                     "flight); retry later"}).encode(),
                    extra="Retry-After: 1\r\n"), True
            else:
                self.inflight += 1
                try:
                    status, raw, keep_alive = await self._relay(req, first)
                finally:
                    self.inflight -= 1
        else:
            status, raw, keep_alive = await self._relay(req, first)
        if m:
            latency = collector.completed(rid, status)
            self.metrics.requests.labels(model, str(status)).inc()
            self.metrics.latency.labels(model).observe(latency)
        return raw, keep_alive

    async def _relay(self, req: HttpRequest, first: Backend | None) -> tuple[int, bytes, bool]:
        if first is None:
            return 503, error(503, "no backend is ready yet"), True
        try:
            status, raw, keep_alive = await first.request(req.raw)
            if not (status == 503 and first.state != "ready"):
                return status, raw, keep_alive
            why = "a retiring backend refused it"
        except UpstreamError as exc:
            why = str(exc)
        again = self.router.current
        if again is None:
            return 502, error(502, f"backend failed ({why}) and no other is ready"), True
        self.metrics.retries.inc()
        log.info("retrying a request on %s: %s", again.url, why)
        try:
            return await again.request(req.raw)
        except UpstreamError as exc:
            return 502, error(502, f"backend failed twice: {why}; then {exc}"), True
