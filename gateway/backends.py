"""The gateway's backends: live servers (``servelab serve`` subprocesses) kept warm, bounded.

A backend is one server process.  Two arms that differ only in their queue policy, or (thread
pools) in their pool size, are the same process (:func:`process_key`): moving between them is
applied in place (``POST /servelab/config``: the engine moves its queue into the new policy;
a thread pool starts or retires inference threads between batches).  Every other change — the
concurrency model, a process pool's size, batching, intra-op threads, locks — needs another
process.

:class:`BackendPool` starts backends in the background (``ServerProcess`` in a thread; ready
when its ``ready at`` line arrived *and* ``/v2/health/ready`` answers 200), keeps at most
``max_warm`` of them (and, if given, ``memory_mb`` of resident memory over all their
processes), and retires the least recently used idle one beyond that: it drains (waits until
the gateway has no request in flight to it), then SIGTERM, which drains the server itself.  The
measured start→ready and drain times are the switching costs the policies account for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import psutil

from servelab.core.config import ServerConfig
from servelab.gateway.upstream import UpstreamError, UpstreamPool
from servelab.servers.base import ServeOptions
from servelab.servers.launch import ServerProcess

log = logging.getLogger(__name__)

READY_PATH = b"GET /v2/health/ready HTTP/1.1\r\nHost: backend\r\n\r\n"


def process_key(config: ServerConfig) -> str:
    """What identifies the server *process* an arm needs (``ServerConfig.process_key``: the
    config minus what changes in place -- the scheduler, and a thread pool's size)."""
    return config.process_key


def control_request(path: str, body: bytes) -> bytes:
    """A ``POST`` of a JSON body to a backend's admin endpoint, as raw bytes."""
    return (f"POST {path} HTTP/1.1\r\nHost: backend\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


@dataclass
class Timing:
    """One measured life-cycle step of a backend."""

    key: str
    concurrency: str
    step: str  # "start" (process start -> ready), "drain" (last request -> stopped), "inplace"
    seconds: float
    at: float  # gateway time (s) when it ended


class Backend:
    """One warm server process and the keep-alive connections to it."""

    def __init__(self, config: ServerConfig, options: ServeOptions, log_path: Path | None):
        self.config = config
        self.key = process_key(config)
        self.proc = ServerProcess(config, options, log=log_path,
                                  stop_timeout=options.drain_timeout_s + 5)
        self.upstream: UpstreamPool | None = None
        self.state = "starting"  # starting | ready | retired | stopped | failed
        self.inflight = 0
        self.last_used = time.monotonic()
        self.error = ""

    @property
    def url(self) -> str:
        return self.proc.url

    async def start(self, timeout: float) -> float:
        """Start the process and wait until it answers ready; the seconds it took."""
        t = time.perf_counter()
        try:
            await asyncio.wait_for(asyncio.to_thread(self.proc.__enter__), timeout)
            host, port = self.proc.hostport
            self.upstream = UpstreamPool(host, port)
            status, _, _ = await self.upstream.request(READY_PATH)
            if status != 200:
                raise RuntimeError(f"{self.url}/v2/health/ready answered {status}")
        except (Exception, asyncio.CancelledError) as exc:
            self.state, self.error = "failed", f"{type(exc).__name__}: {exc}"
            await asyncio.to_thread(self.proc.stop)
            raise
        self.state = "ready"
        return time.perf_counter() - t

    async def reconfigure(self, config: ServerConfig) -> float:
        """Apply ``config``'s in-place fields (same process key) that differ from the
        backend's; the seconds the call took."""
        assert self.upstream is not None and process_key(config) == self.key
        change = {k: getattr(config, k) for k in config.in_place_fields()
                  if getattr(config, k) != getattr(self.config, k)}
        t = time.perf_counter()
        if change:
            body = json.dumps(change).encode()
            status, raw, _ = await self.upstream.request(
                control_request("/servelab/config", body))
            if status != 200:
                raise RuntimeError(f"{self.url} refused {change}: {raw[-300:]!r}")
            self.config = replace(self.config, **change)
        return time.perf_counter() - t

    async def request(self, data: bytes) -> tuple[int, bytes, bool]:
        """Forward one raw request (counted in flight while it runs)."""
        if self.upstream is None:
            raise UpstreamError(f"backend {self.key} is not started")
        self.inflight += 1
        self.last_used = time.monotonic()
        try:
            return await self.upstream.request(data)
        finally:
            self.inflight -= 1

    async def stop(self, drain_timeout: float) -> float:
        """Wait (up to ``drain_timeout``) until no request of the gateway's is in flight here,
        then SIGTERM (the server drains whatever it still holds) and wait for it to exit.
        Returns the seconds from the call to the exit."""
        t = time.perf_counter()
        self.state = "retired"
        end = t + drain_timeout
        while self.inflight > 0 and time.perf_counter() < end:
            await asyncio.sleep(0.005)
        if self.upstream is not None:
            self.upstream.close()
        await asyncio.to_thread(self.proc.stop)
        self.state = "stopped"
        return time.perf_counter() - t

    def rss_mb(self) -> float:
        """Resident memory of the server and its children (worker processes, zygote), MiB."""
        proc = self.proc.proc
        if proc is None or proc.poll() is not None:
            return 0.0
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(proc.pid)
            total = p.memory_info().rss
            for c in p.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += c.memory_info().rss
            return total / 2**20
        return 0.0


class BackendPool:
    """The warm backends, at most ``max_warm`` (and ``memory_mb`` resident, if set)."""

    def __init__(self, options: ServeOptions, max_warm: int = 2, memory_mb: float | None = None,
                 log_dir: Path | None = None, start_timeout: float = 180.0) -> None:
        if max_warm < 1:
            raise ValueError(f"max_warm must be >= 1, got {max_warm}")
        self.options = replace(options, port=0)
        self.max_warm = max_warm
        self.memory_mb = memory_mb
        self.log_dir = log_dir
        self.start_timeout = start_timeout
        self.backends: dict[str, Backend] = {}
        self.timings: list[Timing] = []
        self.t0 = time.monotonic()
        self._stopping: set[asyncio.Task[None]] = set()

    def _log_path(self, key: str) -> Path | None:
        if self.log_dir is None:
            return None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return self.log_dir / f"backend-{key}.log"

    def _record(self, b: Backend, step: str, seconds: float) -> None:
        self.timings.append(Timing(b.key, b.config.concurrency, step, seconds,
                                   time.monotonic() - self.t0))

    async def get(self, config: ServerConfig) -> tuple[Backend, bool]:
        """A ready backend running ``config`` (in-place fields applied if a warm one differs
        only in those); True when a new process had to be started."""
        key = process_key(config)
        b = self.backends.get(key)
        started = False
        if b is None or b.state != "ready":
            b = Backend(config, self.options, self._log_path(key))
            self.backends[key] = b
            try:
                self._record(b, "start", await b.start(self.start_timeout))
            except BaseException:
                if self.backends.get(key) is b:  # not a newer backend of the same key
                    del self.backends[key]
                raise
            started = True
        if b.config != config:
            self._record(b, "inplace", await b.reconfigure(config))
        b.last_used = time.monotonic()
        return b, started

    def retire_beyond_budget(self, keep: Backend) -> list[Backend]:
        """Stop (in the background, draining first) the least recently used backends beyond
        ``max_warm`` / ``memory_mb``, never ``keep``; returns those being retired."""
        warm = sorted((b for b in self.backends.values() if b.state == "ready" and b is not keep),
                      key=lambda b: b.last_used)
        out: list[Backend] = []
        while warm and (len(warm) + 1 > self.max_warm or self._over_memory()):
            b = warm.pop(0)
            out.append(b)
            self.retire(b)
        return out

    def _over_memory(self) -> bool:
        if self.memory_mb is None:
            return False
        return sum(b.rss_mb() for b in self.backends.values() if b.state == "ready") \
            > self.memory_mb

    def retire(self, b: Backend) -> None:
        """Drain and stop ``b`` in the background."""
        self.backends.pop(b.key, None)
        b.state = "retired"

        async def stop() -> None:
            self._record(b, "drain", await b.stop(self.options.drain_timeout_s))

        task = asyncio.get_running_loop().create_task(stop())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def close(self) -> None:
        """Drain and stop every backend."""
        for b in list(self.backends.values()):
            self.retire(b)
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)

    def describe(self) -> list[dict[str, object]]:
        return [{"key": b.key, "url": b.url, "state": b.state, "inflight": b.inflight,
                 "config": b.config.to_dict(), "rss_mb": round(b.rss_mb(), 1)}
                for b in self.backends.values()]
