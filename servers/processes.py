"""The process-pool server: Flask on waitress in this process, N worker processes.

The front end is the same waitress+Flask stack as the thread server, so that the two differ
only in where inference runs.  The models are loaded once, in the pool's zygote process, and
the workers are forked from it (copy-on-write weights; see :mod:`servelab.servers.zygote`):
this process never runs a model.  ``GET /servelab/stats`` reports each worker's USS/PSS/RSS.
"""

from __future__ import annotations

from typing import Any

from servelab.servers.base import Server
from servelab.servers.pool import ProcessExecutor
from servelab.servers.threads import WaitressServer


def make_pool(server: Server) -> ProcessExecutor:
    o, c = server.options, server.config
    return ProcessExecutor(
        server.engine, list(server.models), c.workers, variant=o.variant,
        weights_dir=o.weights_dir, seed=o.seed, intra_op_threads=c.intra_op_threads,
        kernel=c.kernel, nice=o.worker_nice,
    )


class ProcessServer(WaitressServer):
    kind = "processes"

    def _start_executor(self) -> None:
        self.executor = make_pool(self)
        self.executor.start()

    def _stop_executor(self, timeout: float) -> None:
        self.executor.close(timeout)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "workers": self.executor.info(),
                "zygote": self.executor.zygote_info()}
