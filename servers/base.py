"""The interface of the three live servers, their name -> implementation table, and the
serving options that are not part of the configuration under study.

A server is built from a :class:`~servelab.core.config.ServerConfig` (what the study compares:
concurrency, workers, scheduler, batching, locks, offload) and :class:`ServeOptions` (where and
how to serve: address, model variant, limits).  Every server has the same parts —

* an :class:`~servelab.servers.engine.Engine` (admission, policy queue, batching, deadlines),
* an executor that runs the engine's jobs (threads, processes, or the event loop),
* an HTTP front end over :class:`~servelab.servers.api.OipApi` (waitress+Flask or
  uvicorn+FastAPI),

and the same life cycle: :meth:`Server.start` returns once the server answers ready;
:meth:`Server.shutdown` stops intake, drains in-flight requests (bounded), then stops.  Signals
are not handled here: the process supervisor (``servelab serve``) owns them.

``SERVERS`` maps each ``--concurrency`` value to its module, imported on use (uvicorn's
name -> "module:Class" style).
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from servelab.core.config import ServerConfig, opt
from servelab.core.predictor import MeanPredictor, RuntimePredictor
from servelab.servers.api import OipApi
from servelab.servers.engine import Engine
from servelab.servers.metrics import ServerMetrics
from servelab.servers.models import get_servables
from servelab.servers.watchdog import Watchdog
from servelab.servers.zoo.base import ZooModel

log = logging.getLogger(__name__)

VARIANTS = ("full", "tiny")

CONNECTION_GRACE_S = 1.0
"""At the end of a drain, how long open connections may take to send their last request."""


class Frontend(Protocol):
    """The HTTP front end's life cycle, as a server drives it."""

    def start(self) -> None: ...

    def close_door(self, timeout: float = 1.0) -> None:
        """Refuse new connections; keep answering the open ones."""

    def open_connections(self) -> int: ...

    def stop(self, timeout: float = 5.0) -> None: ...


@dataclass(frozen=True)
class ServeOptions:
    """How and where to serve (not part of the configuration under study)."""

    host: str = opt("127.0.0.1", "address to bind; 127.0.0.1 = this machine only")
    port: int = opt(8000, "TCP port (0 = any free port)")
    variant: str = opt("full", "model size", VARIANTS)
    weights_dir: str | None = opt(None, "folder of <model>.pt state_dicts (default: seeded)")
    seed: int = opt(0, "seed of the models' weights")
    max_request_mb: float = opt(16.0, "largest request body accepted, MiB (beyond: 413)")
    drain_timeout_s: float = opt(30.0, "on SIGTERM, how long in-flight requests may finish")
    http_threads: int = opt(0, "WSGI handler threads (0 = queue capacity + workers x batch)")
    trace_out: str | None = opt(None, "on exit, write the per-request trace (Parquet) here")
    predictor: str = opt("mean", "runtime predictor for sjf / priority: mean (per-model running "
                         "mean) or PATH.joblib (a learned one, from servelab predictor train)")
    worker_nice: int = opt(0, "nice increment of the inference workers (threads or processes; "
                           "0 = as the front end). At 10 the front door — parsing, 503s, health "
                           "— keeps the CPU under overload and sheds instead of drowning (see "
                           "servelab bench soak)")
    watchdog_s: float = opt(10.0, "deadlock watchdog: answer 500 (and log every thread's stack) "
                            "for requests whose inference threads have waited this long on a "
                            "lock in a cycle or held by a dead thread; 0 disables")

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; valid: {', '.join(VARIANTS)}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        if not 0 <= self.worker_nice <= 19:
            raise ValueError(f"worker_nice must be in 0..19, got {self.worker_nice}")
        if (self.max_request_mb <= 0 or self.drain_timeout_s < 0 or self.http_threads < 0
                or self.watchdog_s < 0):
            raise ValueError("max_request_mb must be > 0; drain_timeout_s, http_threads and "
                             "watchdog_s >= 0")
        if self.predictor == "oracle":
            raise ValueError("predictor 'oracle' needs each request's true service time, which a "
                             "live server knows only after running it (simulation only); use "
                             "mean or a learned predictor file")

    @property
    def max_request_bytes(self) -> int:
        return int(self.max_request_mb * (1 << 20))


def make_predictor(spec: str, config: ServerConfig) -> RuntimePredictor:
    """The engine's runtime predictor from ``--predictor``: ``mean`` (per-model running mean of
    observed service times) or the path of a learned predictor saved by ``servelab predictor
    train`` (a local file you trust: it is unpickled).  A learned predictor's context is this
    configuration; the engine keeps its CPU utilisation current, and its look-up tables are
    built here, before serving, so no request pays for one."""
    if spec == "mean":
        return MeanPredictor()
    from threadpoolctl import threadpool_limits

    from servelab.core.learned import Context, load

    t = time.perf_counter()
    pred = load(Path(spec), context=Context.for_config(config))
    queue_lens = [0] + [2**k for k in range(max(config.queue_capacity, 1).bit_length() + 1)]
    with threadpool_limits(1):  # no OpenMP pool spinning next to the models' threads
        tables = pred.warm(queue_lens)
    log.info("learned predictor %s: %d tables built in %.2f s", spec, tables,
             time.perf_counter() - t)
    return pred


SERVERS: dict[str, str] = {
    "threads": "servelab.servers.threads:ThreadServer",
    "processes": "servelab.servers.processes:ProcessServer",
    "async": "servelab.servers.aio:AsyncServer",
}
"""``--concurrency`` -> server class, as "module:Class"."""

SETUPS: dict[str, dict[str, str]] = {
    "threads": {"concurrency": "threads"},
    "processes": {"concurrency": "processes"},
    "async-thread": {"concurrency": "async", "offload": "thread"},
    "async-inline": {"concurrency": "async", "offload": "inline"},
    "async-process": {"concurrency": "async", "offload": "process"},
}
"""Named server setups (each concurrency model, and async with each offload) as
``ServerConfig`` fields: what benchmarks and the contract suite iterate over."""


def server_class(name: str) -> type[Server]:
    try:
        target = SERVERS[name]
    except KeyError:
        raise ValueError(f"unknown concurrency {name!r}; valid: {', '.join(SERVERS)}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def make_server(config: ServerConfig, options: ServeOptions | None = None, **kw: Any) -> Server:
    """The server for ``config.concurrency`` (not started)."""
    return server_class(config.concurrency)(config, options or ServeOptions(), **kw)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (SO_REUSEADDR; port 0 = an ephemeral port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP (not 0): asyncio sets TCP_NODELAY on accepted connections only when the
    # socket says it is TCP; without it small responses written in two parts meet Nagle's
    # algorithm and the client's delayed ACK (+40 ms per request).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(False)
    return sock


class Server(ABC):
    """One live inference server (see the module docstring)."""

    kind: ClassVar[str] = ""
    frontend_name: ClassVar[str] = ""
    frontend: Frontend  # set by _start_frontend

    def __init__(
        self, config: ServerConfig, options: ServeOptions | None = None,
        models: dict[str, ZooModel] | None = None,
    ):
        if config.concurrency != self.kind:
            raise ValueError(f"{type(self).__name__} serves concurrency={self.kind!r}, "
                             f"got {config.concurrency!r}")
        self.config = config
        self.options = options or ServeOptions()
        self.models = models if models is not None else get_servables(
            config.models, self.options.variant, self.options.weights_dir, self.options.seed,
            config.kernel,
        )
        missing = [m for m in config.models if m not in self.models]
        if missing:
            raise ValueError(f"models {missing} requested but not provided")
        self.models = {m: self.models[m] for m in config.models}
        self.metrics = ServerMetrics()
        self.engine = Engine(config, self.metrics, make_predictor(self.options.predictor, config))
        self.api = OipApi(self.engine, self.models, self.metrics, self.options.max_request_bytes,
                          server_name=f"servelab-{self.kind}", info=self.info)
        self.watchdog: Watchdog | None = None
        self.sock: socket.socket | None = None
        self.started = False
        self.stopped = False
        self.port = 0

    # -- the parts each server provides ------------------------------------------------------
    @abstractmethod
    def _start_executor(self) -> None: ...

    @abstractmethod
    def _start_frontend(self, sock: socket.socket) -> None: ...

    def _stop_frontend(self, timeout: float) -> None:
        self.frontend.stop(timeout)

    @abstractmethod
    def _stop_executor(self, timeout: float) -> None: ...

    def info(self) -> dict[str, Any]:
        return {"server": self.kind, "frontend": self.frontend_name, "url": self.url}

    # -- helpers -----------------------------------------------------------------------------
    def _load_in_process(self) -> None:
        """Load the models here and set this process's torch intra-op threads."""
        import torch

        torch.set_num_threads(self.config.intra_op_threads)
        for m in self.models.values():
            m.load()

    # -- life cycle --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host = self.options.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def start(self) -> Server:
        """Load, start the executor and the HTTP front end; return once ready."""
        t0 = time.perf_counter()
        c, cores = self.config, os.cpu_count() or 1
        if c.concurrency != "async" or c.offload != "inline":
            if c.workers * c.intra_op_threads > cores:
                log.warning("%d workers x %d intra-op threads oversubscribe %d cores "
                            "(on purpose?)", c.workers, c.intra_op_threads, cores)
        self.sock = bind(self.options.host, self.options.port)
        self.port = self.sock.getsockname()[1]
        try:
            self._start_executor()
            self._start_frontend(self.sock)
        except BaseException:
            self.engine.close()
            self.sock.close()
            raise
        if self.options.watchdog_s > 0:
            self.watchdog = Watchdog(self.engine, self.options.watchdog_s).start()
        self.api.ready = True
        self.started = True
        log.info("%s server ready at %s in %.1f s", self.kind, self.url, time.perf_counter() - t0)
        return self

    def shutdown(self, drain_timeout: float | None = None) -> bool:
        """Stop intake (503), let admitted requests finish for up to ``drain_timeout`` seconds
        (default: the options' ``drain_timeout_s``), then stop everything.  True when every
        admitted request was answered within the timeout."""
        if self.stopped:
            return True
        self.stopped = True
        timeout = self.options.drain_timeout_s if drain_timeout is None else drain_timeout
        self.engine.stop_intake()
        t0 = time.perf_counter()
        self.frontend.close_door()
        drained = self.engine.drain(timeout)
        if self.watchdog is not None:
            self.watchdog.stop()
        self.engine.close()  # fails whatever is left (503)
        end = time.perf_counter() + 2.0
        while self.api.active > 0 and time.perf_counter() < end:
            time.sleep(0.01)  # let handlers send their replies
        # Each open connection closes after its next reply (Connection: close); wait for them
        # (an idle kept-alive one may never send again: bounded by the drain's time left).
        end = min(t0 + timeout, time.perf_counter() + CONNECTION_GRACE_S)
        while self.frontend.open_connections() > 0 and time.perf_counter() < end:
            time.sleep(0.01)
        time.sleep(0.05)
        self._stop_frontend(5.0)
        self._stop_executor(1.0)
        if self.options.trace_out:
            self.write_trace(self.options.trace_out)
        log.info("%s server stopped (%s)", self.kind, "drained" if drained else "drain timed out")
        return drained

    def stop(self) -> None:
        """Stop now (no drain)."""
        self.shutdown(0.0)

    def write_trace(self, path: str | Path) -> Path:
        import pandas as pd

        from servelab.results import records_frame, write_parquet

        path = Path(path)
        write_parquet(path, records_frame(pd.DataFrame(self.engine.trace_columns())))
        return path

    def __enter__(self) -> Server:
        return self.start() if not self.started else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
