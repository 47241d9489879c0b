"""The thread-pool server: Flask on waitress, N inference threads in this process.

waitress's handler threads decode requests and admit them to the engine; ``workers`` inference
threads pull batches from the shared policy queue and run them, guarded by ``--model-lock``
(``global``: one model runs at a time; ``per-model``: one batch per model at a time; ``none``).
Each batch's wait for its lock is measured (``servelab_lock_wait_seconds``, ``lock_wait_s``
in the trace).  Torch's intra-op threads are set for the whole process.  The pool resizes live
(``POST /servelab/config {"workers": N}``: :meth:`Engine.set_workers`); waitress's handler
threads keep the count they started with.
"""

from __future__ import annotations

import socket
from typing import Any

from servelab.servers.base import Server
from servelab.servers.http_wsgi import WaitressFrontend, make_flask_app
from servelab.servers.inproc import ThreadExecutor


def wsgi_threads(server: Server) -> int:
    """waitress handler threads: enough to hold every request the engine can admit."""
    if server.options.http_threads:
        return server.options.http_threads
    c = server.config
    return min(1024, c.queue_capacity + c.workers * c.max_batch + 8)


class WaitressServer(Server):
    """A server whose HTTP front end is Flask on waitress (the threads and processes servers:
    they differ only in where inference runs)."""

    frontend_name = WaitressFrontend.name

    def _start_frontend(self, sock: socket.socket) -> None:
        self.frontend = WaitressFrontend(
            make_flask_app(self.api), sock, wsgi_threads(self), self.options.max_request_bytes
        )
        self.frontend.start()


class ThreadServer(WaitressServer):
    kind = "threads"

    def _start_executor(self) -> None:
        self._load_in_process()
        self.executor = ThreadExecutor(
            self.engine, self.models, self.config.workers, self.config.model_lock,
            nice=self.options.worker_nice,
        )
        self.executor.start()
        self.api.resize = lambda n: self.engine.set_workers(n, self.executor.resize)

    def _stop_executor(self, timeout: float) -> None:
        self.executor.join(timeout)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "http_threads": getattr(self, "frontend", None) and
                self.frontend.threads, "workers": self.executor.info()}
