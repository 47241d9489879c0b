"""The WSGI front end: a Flask app on waitress (a production multi-threaded WSGI server, not
Flask's development server).

waitress runs an asyncore loop that parses HTTP and hands each request to one of its
``threads``; the handler thread blocks on the request's ticket until an inference worker answers
it.  So that admission control (not waitress's internal task queue) decides overload, the thread
count defaults to the engine's queue capacity plus the requests its workers can hold.

The front door (:class:`GuardedChannel`, waitress's connection object, in its loop thread):

* health checks (``/v2/health/live``, ``/v2/health/ready``) are answered by the loop thread
  itself, so they never wait for a handler thread, at any overload;
* **before the body is read**, the moment an infer request's head is in, it asks
  :meth:`OipApi.front_door`: a body declared over the cap gets its 413 at once, and while the
  server drains or its queue is full a 503 with ``Retry-After`` — written by the loop thread
  itself, so overload never takes a handler thread, never waits in waitress's task queue, and
  costs no body parsing.  After a 503 the connection stays open (the unread body is skipped);
  after a 413 it is closed with a *lingering close*: the server stops writing and keeps
  reading (and dropping) what the client still sends, for up to :data:`LINGER_S`, so the
  client finishes its write and can read the 413 instead of meeting a connection reset;
* **read timeouts**: a request whose head and body have not all arrived within
  ``api.read_timeout_s`` of its first byte (a slow or stalled client) gets 408 and the
  connection is closed; a connection that sends nothing at all is closed after the same time;
* waitress's own protocol errors (bad request line, header too large, chunked body over the
  cap) are answered as the API's JSON errors (``{"error": ...}``).
"""

from __future__ import annotations

import json
import logging
import select
import socket
import threading
import time
from typing import Any

from flask import Flask, Response, request
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import create_server
from waitress.task import ErrorTask, WSGITask
from waitress.utilities import RequestEntityTooLarge

from servelab.servers.api import OipApi, Pending, Reply, error_reply

log = logging.getLogger(__name__)

LINGER_S = 5.0
"""After a 413, how long the connection keeps reading (and dropping) the client's body."""
LINGER_BYTES = 256 << 20
"""...and how much of it, at most."""
TICK_S = 0.1
"""How often the loop checks read timeouts and lingering closes."""
REASONS = {200: "OK", 408: "Request Timeout", 413: "Payload Too Large",
           503: "Service Unavailable"}
HEALTH = {"/v2/health/live": "live", "/v2/health/ready": "health_ready"}
"""Answered by the loop thread itself: health stays answered when every handler thread is
busy (overload)."""
RECEIVED = "servelab.received"
"""The environ key: ``time.monotonic()`` when the request's first byte arrived."""


def make_flask_app(api: OipApi) -> Flask:
    app = Flask("servelab")
    app.extensions["servelab_api"] = api  # the front door (WaitressFrontend) asks it too

    def send(reply: Reply) -> Response:
        # (no api.finish: Connection is hop-by-hop, WSGI apps may not set it; DrainingTask does)
        return Response(reply.body, status=reply.status, headers=reply.headers)

    @app.get("/v2/health/live")
    def live() -> Response:
        return send(api.live())

    @app.get("/v2/health/ready")
    def ready() -> Response:
        return send(api.health_ready())

    @app.get("/v2")
    def server_metadata() -> Response:
        return send(api.server_metadata())

    @app.get("/v2/models/<name>")
    @app.get("/v2/models/<name>/versions/<version>")
    def model_metadata(name: str, version: str | None = None) -> Response:
        return send(api.model_metadata(name))

    @app.get("/v2/models/<name>/ready")
    @app.get("/v2/models/<name>/versions/<version>/ready")
    def model_ready(name: str, version: str | None = None) -> Response:
        return send(api.model_ready(name))

    @app.post("/v2/models/<name>/infer")
    @app.post("/v2/models/<name>/versions/<version>/infer")
    def infer(name: str, version: str | None = None) -> Response:
        # Normally the channel has already answered these; this covers pipelined requests.
        early = api.too_large(request.content_length) or api.admission(name)
        if early is not None:
            return send(early)
        body = request.stream.read(api.max_request_bytes + 1)
        if len(body) > api.max_request_bytes:
            return send(api.body_too_large())
        pending = api.begin_infer(name, body, request.headers,
                                  received=request.environ.get(RECEIVED))
        if isinstance(pending, Pending):
            pending.ticket.wait()
            return send(api.finish_infer(pending))
        return send(pending)

    @app.get("/metrics")
    def metrics() -> Response:
        return send(api.metrics_reply())

    @app.get("/servelab/stats")
    def stats() -> Response:
        return send(api.stats())

    @app.get("/servelab/trace")
    def trace() -> Response:
        return send(api.trace())

    @app.post("/servelab/config")
    def configure() -> Response:
        return send(api.configure(request.get_data()))

    @app.errorhandler(404)
    def not_found(exc: Any) -> Response:
        return send(error_reply(404, f"no such endpoint: {request.method} {request.path}"))

    @app.errorhandler(405)
    def not_allowed(exc: Any) -> Response:
        return send(error_reply(405, f"method {request.method} not allowed on {request.path}"))

    return app


def response_bytes(status: int, body: bytes, headers: dict[str, str], close: bool) -> bytes:
    """A complete HTTP/1.1 response."""
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += [f"Content-Length: {len(body)}", "Server: servelab"]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class DrainingTask(WSGITask):
    """The app's replies; one sent while the server drains closes its connection after it
    (``Connection: close``, see :meth:`OipApi.finish`).  The environ carries when the request's
    first byte arrived (:data:`RECEIVED`), so time in waitress's task queue counts."""

    def get_environment(self) -> Any:
        environ = super().get_environment()
        environ[RECEIVED] = getattr(self.request, "first_byte_at", None)
        return environ

    def build_response_header(self) -> Any:
        api = self.channel.frontend.api if isinstance(self.channel, GuardedChannel) else None
        if api is not None and api.draining:
            self.set_close_on_finish()
        return super().build_response_header()


class JsonErrorTask(ErrorTask):
    """waitress's own protocol errors, as the API's ``{"error": ...}`` JSON."""

    def execute(self) -> None:
        e = self.request.error
        if isinstance(self.channel, GuardedChannel):
            self.channel.linger_pending = True  # the client may still be sending
        self.status = f"{e.code} {e.reason}"
        body = json.dumps({"error": f"{e.reason}: {e.body}"}).encode()
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _Sink:
    """Stands in for waitress's request parser while the body of a request that was already
    answered is skipped: ``left`` bytes (then it is complete and parsing goes on), or every
    byte until the connection closes (``left`` None)."""

    empty = True
    error = None
    expect_continue = False
    headers_finished = True

    def __init__(self, left: int | None):
        self.left = left
        self.completed = left == 0

    def received(self, data: bytes) -> int:
        if self.left is None:
            return len(data)
        k = min(self.left, len(data))
        self.left -= k
        self.completed = self.left == 0
        return k

    def close(self) -> None:
        pass


class GuardedParser(HTTPRequestParser):
    """waitress's parser, which asks the channel's front door once the head is in."""

    error: Any  # waitress's (untyped) attribute
    first_byte_at: float | None = None
    """``time.monotonic()`` at the request's first byte."""

    def __init__(self, adj: Any, channel: GuardedChannel):
        super().__init__(adj)
        self.channel = channel

    def received(self, data: bytes) -> int:
        head_before = self.headers_finished
        n = int(super().received(data))
        if not head_before and self.headers_finished and not self.empty and (
            self.error is None or isinstance(self.error, RequestEntityTooLarge)
        ):  # (waitress's own limit is checked with the head: the front door's answer wins)
            answered = self.channel.front_door(self)
            if answered is not None:
                self.error = None
            if answered == "close":
                return len(data)  # the rest of this read is body: dropped
        return n


class GuardedChannel(HTTPChannel):
    """One client connection: waitress's, plus the front door (see the module docstring).
    ``frontend`` (the class attribute of a per-server subclass) holds the API."""

    frontend: WaitressFrontend
    error_task_class = JsonErrorTask
    task_class = DrainingTask
    will_close: bool  # waitress's (untyped) attributes
    request: Any

    def __init__(self, *args: Any, **kw: Any):
        self.opened = time.monotonic()
        self.request_started: float | None = None  # first byte of the request being read
        self.ever_received = False
        self.skip = 0  # body bytes to skip after an early answer that keeps the connection
        self.linger_pending = False  # close lingering (set with any answer that closes)
        self.lingering: float | None = None  # deadline of the lingering close under way
        self.lingered = 0
        self.closed = False
        super().__init__(*args, **kw)
        self.parser_class = self._new_parser  # type: ignore[assignment]

    def _new_parser(self, adj: Any) -> Any:
        if self.linger_pending:
            return _Sink(None)
        if self.skip:
            sink, self.skip = _Sink(self.skip), 0
            return sink
        self.request_started = time.monotonic()
        self.ever_received = True
        parser = GuardedParser(adj, self)
        parser.first_byte_at = self.request_started
        return parser

    # -- the front door (loop thread) ------------------------------------------------------
    def front_door(self, parser: GuardedParser) -> str | None:
        """Answer ``parser``'s request now if the API says so: "keep" (the connection goes on
        once the body is skipped), "close", or None (not answered: read on)."""
        api = self.frontend.api
        if api is None or self.requests:  # a pipelined request waits its turn: the app decides
            return None
        length = None if parser.chunked else parser.content_length
        if parser.command == "GET" and parser.path in HEALTH:
            reply: Reply | None = getattr(api, HEALTH[parser.path])()  # never waits for a thread
        else:
            reply = api.front_door(parser.command, parser.path, length)
        if reply is None:
            return None
        close = (reply.status == 413 or parser.chunked or parser.expect_continue
                 or parser.connection_close or api.draining)
        parser.expect_continue = False  # no 100 Continue: this answer is final
        parser.completed = parser.empty = True  # nothing for the app
        self.request_started = None
        self.write_now(response_bytes(reply.status, reply.body, reply.headers, close), close)
        if not close:
            self.skip = parser.content_length
        return "close" if close else "keep"

    def write_now(self, data: bytes, close: bool) -> None:
        """Queue ``data`` from the loop thread (only while no task of this connection runs)."""
        with self.outbuf_lock:
            self.outbufs[-1].append(data)
            self.current_outbuf_count += len(data)
            self.total_outbufs_len += len(data)
        if close:
            self.linger_pending = True
            self.close_when_flushed = True

    def received(self, data: bytes) -> bool:
        if self.lingering is not None:
            return True
        done = bool(super().received(data))
        if self.request is None or isinstance(self.request, _Sink):
            self.request_started = None  # handed to the app (or answered): not being read
        return done

    # -- timeouts and lingering close (loop thread, every TICK_S) --------------------------
    def tick(self, now: float) -> None:
        if self.closed:
            return
        if self.lingering is not None:
            if now >= self.lingering:
                self._close()
            return
        if self.requests or self.will_close or self.close_when_flushed:
            return
        api = self.frontend.api
        limit = api.read_timeout_s if api is not None else 30.0
        if isinstance(self.request, _Sink):  # skipping a body: it must arrive in time too
            if now - self.opened > limit and now - self.last_activity_monotonic(now) > limit:
                self.will_close = True
            return
        started = self.request_started
        if started is None:
            if not self.ever_received and now - self.opened > limit:
                self.will_close = True  # connected and never sent a byte
            return
        if now - started <= limit:
            return
        reply = error_reply(408, f"request not received within {limit:g} s (a slow client "
                                 "sending its headers or body)")
        self.request = None
        self.request_started = None
        self.write_now(response_bytes(408, reply.body, reply.headers, True), True)

    def last_activity_monotonic(self, now: float) -> float:
        return now - (time.time() - self.last_activity)

    def handle_close(self) -> None:
        if self.linger_pending and self.lingering is None and not self.closed:
            try:
                self.socket.shutdown(socket.SHUT_WR)
            except (OSError, AttributeError):
                self._close()
                return
            self.lingering = time.monotonic() + LINGER_S
            self.will_close = self.close_when_flushed = False
            return
        self._close()

    def _close(self) -> None:
        if not self.closed:
            self.closed = True
            super().handle_close()

    def readable(self) -> bool:
        return True if self.lingering is not None else bool(super().readable())

    def writable(self) -> bool:
        return False if self.lingering is not None else bool(super().writable())

    def handle_read(self) -> None:
        if self.lingering is None:
            super().handle_read()
            return
        try:
            data = self.socket.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        self.lingered += len(data)
        if not data or self.lingered > LINGER_BYTES:
            self._close()


class WaitressFrontend:
    """waitress serving ``app`` on an already-bound socket, its loop in a daemon thread, with
    the front door of :class:`GuardedChannel`."""

    name = "waitress+flask"

    def __init__(self, app: Any, sock: socket.socket, threads: int, max_body: int):
        self.sock = sock
        self.api: OipApi | None = getattr(app, "extensions", {}).get("servelab_api")
        self.server = create_server(
            app, sockets=[sock], threads=threads, ident="servelab",
            # the front door refuses a declared body over max_body before reading it; this
            # bounds chunked bodies (answered 413 by the app up to here, by waitress beyond)
            max_request_body_size=max_body + (1 << 20), connection_limit=4096,
            backlog=2048, channel_timeout=300, asyncore_use_poll=True,
            clear_untrusted_proxy_headers=True,
        )
        self.server.channel_class = type("Channel", (GuardedChannel,), {"frontend": self})
        self.threads = threads
        self._stop = threading.Event()
        self._close_door = threading.Event()
        self._door_closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="waitress-loop", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        srv = self.server
        next_tick = time.monotonic() + TICK_S
        while not self._stop.is_set():
            try:
                wasyncore.loop(timeout=TICK_S, map=srv._map, use_poll=True, count=1)
                if self._close_door.is_set() and not self._door_closed.is_set():
                    self._shut_door()
                now = time.monotonic()
                if now >= next_tick:
                    next_tick = now + TICK_S
                    for channel in list(srv.active_channels.values()):
                        if isinstance(channel, GuardedChannel):
                            channel.tick(now)
            except Exception:  # pragma: no cover - keep serving
                log.exception("waitress loop error")
        srv.task_dispatcher.shutdown(cancel_pending=True, timeout=2)
        wasyncore.close_all(srv._map)

    def _shut_door(self) -> None:
        """(loop thread) Accept the connections already queued in the kernel's backlog —
        closing the listener would reset them, though their clients think them open — then
        close the listener: a new connection is refused from here on, never cut."""
        srv = self.server
        try:
            while select.select([srv.socket], [], [], 0)[0]:
                before = len(srv._map)
                srv.handle_accept()
                if len(srv._map) == before:
                    break
            srv.close()
        except OSError:  # pragma: no cover - already closed
            pass
        self._door_closed.set()

    def close_door(self, timeout: float = 1.0) -> None:
        """Stop taking new connections (the drain): those open are still answered, each closed
        after its next reply (see :meth:`OipApi.finish`)."""
        self._close_door.set()
        if self._thread.is_alive():
            self._door_closed.wait(timeout)

    def open_connections(self) -> int:
        return len(self.server.active_channels)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
