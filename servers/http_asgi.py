"""The ASGI front end: a FastAPI app on uvicorn, one event loop in one thread.

The infer handler awaits a future that the request's ticket resolves (thread-safely) when an
executor answers it; with ``--offload inline`` that executor is itself a coroutine on this loop.
uvicorn runs with its default pure-Python protocol stack here (h11 + asyncio: httptools and
uvloop are not installed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

from servelab.servers.api import OipApi, Pending, Reply, error_reply
from servelab.servers.engine import Ticket

log = logging.getLogger(__name__)


def make_fastapi_app(api: OipApi) -> FastAPI:
    app = FastAPI(title="servelab", openapi_url=None, docs_url=None, redoc_url=None)

    def send(reply: Reply) -> Response:
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
        early = api.too_large(int(cl) if cl and cl.isdigit() else None)
        if early is not None:
            return send(early)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > api.max_request_bytes:
                return send(api.body_too_large())
            chunks.append(chunk)
        pending = api.begin_infer(name, b"".join(chunks), request.headers)
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

    @app.exception_handler(404)
    async def not_found(request: Request, exc: Any) -> Response:
        return send(error_reply(404, f"no such endpoint: {request.method} {request.url.path}"))

    @app.exception_handler(405)
    async def not_allowed(request: Request, exc: Any) -> Response:
        return send(error_reply(405, f"method {request.method} not allowed on {request.url.path}"))

    return app


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
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", loop="asyncio",
            http="h11", backlog=2048, timeout_keep_alive=30, timeout_graceful_shutdown=2,
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

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)
