"""The ASGI front end: a FastAPI app on uvicorn, one event loop in one thread.

The infer handler awaits a future that the request's ticket resolves (thread-safely) when an
executor answers it; with ``--offload inline`` that executor is itself a coroutine on this loop.
uvicorn runs with its default pure-Python protocol stack here (h11 + asyncio: httptools and
uvloop are not installed).

The front door, as in the WSGI front end:

* before the body is received, :meth:`OipApi.front_door` may answer an infer request at once:
  413 when the declared body is over the cap, 503 with ``Retry-After`` while draining or with
  the queue full.  uvicorn then drops the unread body as it arrives and keeps the connection,
  so the client finishes sending and reads the answer (no reset);
* read timeouts (``api.read_timeout_s``): :class:`GuardedH11Protocol` answers 408 and closes a
  connection whose request head has not arrived within the limit of its first byte (or of the
  connection opening, when nothing comes), and the infer handler answers 408 when the body
  has not arrived by then either.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import h11
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.h11_impl import H11Protocol

from servelab.servers.api import OipApi, Pending, Reply, error_reply
from servelab.servers.tickets import Ticket

log = logging.getLogger(__name__)


READ_STARTED = "servelab.read_started"
"""Scope key: when the request's first byte arrived (monotonic clock)."""
RECEIVED = "servelab.received"
"""Scope key: ``time.monotonic()`` when the request's head was in (its time in the server
counts from there; the read timeout's start can be a fresh connection's opening instead)."""


def make_fastapi_app(api: OipApi) -> FastAPI:
    app = FastAPI(title="servelab", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.servelab_api = api  # the protocol's read timeout asks it too

    def send(reply: Reply) -> Response:
        reply = api.finish(reply)
        return Response(reply.body, status_code=reply.status, headers=reply.headers)

    @app.get("/v2/health/live")
    async def live() -> Response:
        return send(api.live())

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        return send(api.health_ready())

    @app.get("/v2")
    async def server_metadata() -> Response:
        return send(api.server_metadata())

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(name: str, version: str | None = None) -> Response:
        return send(api.model_metadata(name))

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(name: str, version: str | None = None) -> Response:
        return send(api.model_ready(name))

    @app.post("/v2/models/{name}/infer")
    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def infer(name: str, request: Request, version: str | None = None) -> Response:
        cl = request.headers.get("content-length")
        early = api.front_door("POST", request.url.path, int(cl) if cl and cl.isdigit() else None)
        if early is not None:  # before the body: uvicorn drops it as it arrives
            return send(early)
        chunks: list[bytes] = []
        started = request.scope.get(READ_STARTED) or time.monotonic()
        left = api.read_timeout_s - (time.monotonic() - started)

        async def read() -> Reply | None:
            size = 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > api.max_request_bytes:
                    return api.body_too_large()
                chunks.append(chunk)
            return None

        try:
            refused = await asyncio.wait_for(read(), max(left, 0.001))
        except asyncio.TimeoutError:
            reply = error_reply(408, f"request body not received within "
                                     f"{api.read_timeout_s:g} s (a slow client)")
            reply.headers["Connection"] = "close"
            return send(reply)
        except ClientDisconnect:
            return Response(status_code=499)  # nobody to answer
        if refused is not None:
            return send(refused)
        pending = api.begin_infer(name, b"".join(chunks), request.headers,
                                  received=request.scope.get(RECEIVED))
        if not isinstance(pending, Pending):
            return send(pending)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def resolve(_: Ticket) -> None:
            def set_done() -> None:
                if not fut.done():
                    fut.set_result(None)

            with contextlib.suppress(RuntimeError):  # loop closed
                loop.call_soon_threadsafe(set_done)

        pending.ticket.add_done_callback(resolve)
        try:
            await fut
        except asyncio.CancelledError:
            api.abandon(pending)
            raise
        return send(api.finish_infer(pending))

    @app.get("/metrics")
    async def metrics() -> Response:
        return send(api.metrics_reply())

    @app.get("/servelab/stats")
    async def stats() -> Response:
        return send(await asyncio.to_thread(api.stats))

    @app.get("/servelab/trace")
    async def trace() -> Response:
        return send(api.trace())

    @app.post("/servelab/config")
    async def configure(request: Request) -> Response:
        return send(api.configure(await request.body()))

    @app.exception_handler(404)
    async def not_found(request: Request, exc: Any) -> Response:
        return send(error_reply(404, f"no such endpoint: {request.method} {request.url.path}"))

    @app.exception_handler(405)
    async def not_allowed(request: Request, exc: Any) -> Response:
        return send(error_reply(405, f"method {request.method} not allowed on {request.url.path}"))

    return app


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a read timeout for the request head (see the module
    docstring); the time the head's first byte arrived goes into the scope for the body's.
    ``api`` is set on a per-server subclass."""

    api: OipApi | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._started: float | None = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self._arm()

    def _limit(self) -> float:
        return self.api.read_timeout_s if self.api is not None else 30.0

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        assert self._started is not None
        delay = self._limit() - (time.monotonic() - self._started)
        self._timer = self.loop.call_later(max(delay, 0.0), self._read_timeout)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._started = None

    def data_received(self, data: bytes) -> None:
        waiting_for_head = self.conn.their_state is h11.IDLE
        if waiting_for_head and self._started is None and data:
            self._started = time.monotonic()  # a new request's first byte
            self._arm()
        cycle = self.cycle
        super().data_received(data)
        if self.cycle is not cycle and self.cycle is not None:  # its head is in
            self.cycle.scope[READ_STARTED] = self._started  # type: ignore[literal-required]
            self.cycle.scope[RECEIVED] = time.monotonic()  # type: ignore[literal-required]
            self._disarm()

    def _read_timeout(self) -> None:
        self._timer = None
        if self.transport.is_closing() or self._started is None:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a response is under way: not ours to interrupt
        limit = self._limit()
        body = json.dumps({"error": f"request head not received within {limit:g} s "
                                    "(a slow client)"}).encode()
        head = (f"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode()
        self.transport.write(head + body)
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


class UvicornFrontend:
    """uvicorn serving ``app`` on an already-bound socket, its event loop in a daemon thread.

    ``on_loop(loop)`` runs on the loop before serving (the inline executor starts there)."""

    name = "uvicorn+fastapi"

    def __init__(
        self, app: Any, sock: socket.socket,
        on_loop: Callable[[asyncio.AbstractEventLoop], Awaitable[None] | None] | None = None,
    ):
        self.sock = sock
        self.on_loop = on_loop
        state = getattr(app, "state", None)
        protocol = type("Protocol", (GuardedH11Protocol,),
                        {"api": getattr(state, "servelab_api", None)})
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", loop="asyncio",
            http=protocol, backlog=2048, timeout_keep_alive=30,
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="uvicorn-loop", daemon=True)
        self.error: BaseException | None = None

    def start(self, timeout: float = 30.0) -> None:
        self._thread.start()
        if not self._started.wait(timeout):
            raise RuntimeError("uvicorn did not start")
        if self.error is not None:
            raise RuntimeError(f"uvicorn failed to start: {self.error}")

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)

        async def main() -> None:
            if self.on_loop is not None:
                r = self.on_loop(loop)
                if r is not None:
                    await r
            task = loop.create_task(self.server.serve(sockets=[self.sock]))
            while not self.server.started and not task.done():
                await asyncio.sleep(0.01)
            self._started.set()
            await task

        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # pragma: no cover - startup failure
            self.error = exc
            log.exception("uvicorn loop failed")
        finally:
            self._started.set()
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def close_door(self, timeout: float = 1.0) -> None:
        """Stop taking new connections (the drain): those open are still answered, each closed
        after its next reply (see :meth:`OipApi.finish`)."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        done = threading.Event()

        def shut() -> None:
            for s in self.server.servers:
                s.close()
            done.set()

        loop.call_soon_threadsafe(shut)
        done.wait(timeout)

    def open_connections(self) -> int:
        return len(self.server.server_state.connections)

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)
