"""The WSGI front end: a Flask app on waitress (a production multi-threaded WSGI server, not
Flask's development server).

waitress runs an asyncore loop that parses HTTP and hands each request to one of its
``threads``; the handler thread blocks on the request's ticket until an inference worker answers
it.  So that admission control (not waitress's internal task queue) decides overload, the thread
count defaults to the engine's queue capacity plus the requests its workers can hold.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

from flask import Flask, Response, request
from waitress import wasyncore
from waitress.server import create_server

from servelab.servers.api import OipApi, Pending, Reply, error_reply

log = logging.getLogger(__name__)


def make_flask_app(api: OipApi) -> Flask:
    app = Flask("servelab")

    def send(reply: Reply) -> Response:
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
        early = api.too_large(request.content_length)
        if early is not None:
            return send(early)
        body = request.stream.read(api.max_request_bytes + 1)
        if len(body) > api.max_request_bytes:
            return send(api.body_too_large())
        pending = api.begin_infer(name, body, request.headers)
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

    @app.errorhandler(404)
    def not_found(exc: Any) -> Response:
        return send(error_reply(404, f"no such endpoint: {request.method} {request.path}"))

    @app.errorhandler(405)
    def not_allowed(exc: Any) -> Response:
        return send(error_reply(405, f"method {request.method} not allowed on {request.path}"))

    return app


class WaitressFrontend:
    """waitress serving ``app`` on an already-bound socket, its loop in a daemon thread."""

    name = "waitress+flask"

    def __init__(self, app: Any, sock: socket.socket, threads: int, max_body: int):
        self.sock = sock
        self.server = create_server(
            app, sockets=[sock], threads=threads, ident="servelab",
            max_request_body_size=max_body + (1 << 20), connection_limit=4096,
            backlog=2048, channel_timeout=300, asyncore_use_poll=True,
            clear_untrusted_proxy_headers=True,
        )
        self.threads = threads
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="waitress-loop", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        srv = self.server
        while not self._stop.is_set():
            try:
                wasyncore.loop(timeout=0.1, map=srv._map, use_poll=True, count=1)
            except Exception:  # pragma: no cover - keep serving
                log.exception("waitress loop error")
        srv.task_dispatcher.shutdown(cancel_pending=True, timeout=2)
        wasyncore.close_all(srv._map)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
