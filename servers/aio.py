"""The asyncio server: FastAPI on uvicorn, one event loop; ``--offload`` picks where inference
runs:

* ``inline`` — on the event loop itself (``workers`` coroutines; the loop is blocked for each
  stage, so health checks and new requests wait behind inference: the failure case, kept on
  purpose to be measured);
* ``thread`` — a bounded pool of ``workers`` inference threads (the thread server's executor,
  with ``--model-lock``);
* ``process`` — a pool of ``workers`` processes (the process server's executor).

In every mode the handler admits the request to the shared engine and awaits its ticket; the
queue policy, batching and deadlines are the engine's.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from servelab.servers.base import Server
from servelab.servers.http_asgi import UvicornFrontend, make_fastapi_app
from servelab.servers.inproc import InlineExecutor, ThreadExecutor
from servelab.servers.processes import make_pool


class AsyncServer(Server):
    kind = "async"
    frontend_name = UvicornFrontend.name

    def _start_executor(self) -> None:
        offload = self.config.offload
        self.executor: Any
        if offload == "process":
            self.executor = make_pool(self)
            self.executor.start()
        else:
            self._load_in_process()
            if offload == "thread":
                self.executor = ThreadExecutor(
                    self.engine, self.models, self.config.workers, self.config.model_lock,
                    nice=self.options.worker_nice,
                )
                self.executor.start()
            else:  # inline: started on the loop by the front end
                self.executor = InlineExecutor(self.engine, self.models, self.config.workers)

    def _start_frontend(self, sock: socket.socket) -> None:
        on_loop = None
        if isinstance(self.executor, InlineExecutor):
            inline = self.executor

            def on_loop(loop: asyncio.AbstractEventLoop) -> None:
                inline.start(loop)

        self.frontend = UvicornFrontend(make_fastapi_app(self.api), sock, on_loop)
        self.frontend.start()

    def _stop_executor(self, timeout: float) -> None:
        if isinstance(self.executor, ThreadExecutor):
            self.executor.join(timeout)
        elif not isinstance(self.executor, InlineExecutor):
            self.executor.close(timeout)

    def info(self) -> dict[str, Any]:
        out = {**super().info(), "offload": self.config.offload,
               "workers": self.executor.info()}
        if hasattr(self.executor, "zygote_info"):
            out["zygote"] = self.executor.zygote_info()
        return out
