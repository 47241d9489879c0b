"""A stub OIP v2 server with controlled misbehaviour: fixed delays, a stall, chosen statuses.

It answers ``POST /v2/models/{model}/infer`` with a small valid OIP response (or an error
status), ``GET /v2/health/ready`` and ``/v2/health/live`` with 200, and has two control
endpoints for tests and benchmarks: ``GET /stub/stats`` (counters as JSON) and ``POST
/stub/config`` (a JSON object of :class:`StubConfig` fields; resets the counters and the stall
clock, and drops the connections a misbehaving mode held).  It is a raw asyncio HTTP/1.1
server — keep-alive, ``Content-Length`` bodies — so it costs far less CPU per request than the
generator it is measuring.

Behaviour per infer request, arriving at time ``a`` (seconds after the first request since the
last reset):

* the answer is due at ``a + delay_ms``; if that falls inside the stall window
  ``[stall_at, stall_at + stall_s)`` it is held until the window ends (a server pause: nothing
  completes while it lasts);
* every ``reject_every``-th request is answered 503 at once; with ``capacity`` > 0 a request
  that finds ``capacity`` requests already held is answered 503 too;
* otherwise the answer has status ``status`` (200 by default; 504 and 500 are useful too).

``mode`` makes it misbehave the way a broken or overloaded server does, for every infer request
(health, metadata and the control endpoints keep working, so a test can always reconfigure it):

* ``no_read`` — stop reading the connection the moment an infer request line arrives (its
  body, and anything after it, stays unread: the client's writes back up) and never answer;
* ``no_answer`` — read the request and never answer it;
* ``reset`` — reset the connection (TCP RST) instead of answering;
* ``close`` — close the connection (FIN) without answering.

``models`` (comma-separated) limits the models it serves: others get 404 on infer, metadata and
``GET /v2/models/{name}/ready``, as a real server answers for a model it does not have.

Run it alone: ``python -m servelab.loadgen.stub --port 8000 --delay-ms 5``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from servelab.core.config import add_dataclass_args, from_args, opt
from servelab.servers.oip import encode_response, error_body

log = logging.getLogger(__name__)

REASONS = {200: "OK", 404: "Not Found", 400: "Bad Request", 500: "Internal Server Error",
           503: "Service Unavailable", 504: "Gateway Timeout", 429: "Too Many Requests"}

MODES = ("normal", "no_read", "no_answer", "reset", "close")
"""How the stub treats infer requests (see the module docstring)."""


@dataclass(frozen=True)
class StubConfig:
    """How the stub behaves (also the body of ``POST /stub/config``)."""

    delay_ms: float = opt(0.0, "answer each infer request this many ms after it arrives")
    status: int = opt(200, "HTTP status of infer answers")
    reject_every: int = opt(0, "answer every k-th infer request 503 (0 = never)")
    capacity: int = opt(0, "answer 503 when this many requests are already held (0 = no limit)")
    stall_at: float = opt(-1.0, "start of a stall, seconds after the first request (<0 = none)")
    stall_s: float = opt(0.0, "length of the stall in seconds")
    mode: str = opt("normal", "misbehaviour for infer requests: normal, no_read (stop reading "
                    "the connection), no_answer, reset (TCP RST), close (FIN, no answer)", MODES)
    models: str = opt("", "comma-separated models served (empty = any name)")

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; valid: {', '.join(MODES)}")

    def serves(self, model: str) -> bool:
        return not self.models or model in {m.strip() for m in self.models.split(",")}


class StubState:
    """The stub's configuration and counters, shared by all its connections."""

    def __init__(self, config: StubConfig) -> None:
        self.config = config
        self.connections = 0  # open now
        self.reset()
        self._bodies: dict[str, bytes] = {}

    def reset(self) -> None:
        self.first: float | None = None
        self.received = 0
        self.held = 0
        self.answered: dict[int, int] = {}
        self.misbehaved = 0  # infer requests not read, not answered, reset or closed
        self.peak_connections = getattr(self, "connections", 0)  # most open at once since
        # Connections that stopped reading: the event loop no longer references them, so
        # without this they would be garbage-collected (and closed).
        self.stalled: set[StubProtocol] = set()

    def ok_body(self, model: str) -> bytes:
        body = self._bodies.get(model)
        if body is None:
            body, _ = encode_response(model, {"output": np.zeros((1, 1), dtype=np.float32)})
            self._bodies[model] = body
        return body

    def stats(self) -> dict[str, Any]:
        return {
            "received": self.received, "held": self.held, "misbehaved": self.misbehaved,
            "connections": self.connections, "peak_connections": self.peak_connections,
            "answered": {str(k): v for k, v in sorted(self.answered.items())},
            "config": asdict(self.config),
        }


def _response(status: int, body: bytes, close: bool = False,
              content_type: str = "application/json") -> bytes:
    head = (
        f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        + ("Connection: close\r\n" if close else "")
        + "\r\n"
    )
    return head.encode("latin-1") + body


class StubProtocol(asyncio.Protocol):
    """One client connection; requests are answered in order, one at a time."""

    def __init__(self, state: StubState) -> None:
        self.state = state
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False  # a held request is pending on this connection
        self.stalled = False  # misbehaving: nothing more is read or answered here
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        st = self.state
        st.connections += 1
        st.peak_connections = max(st.peak_connections, st.connections)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.state.connections -= 1
        self.state.stalled.discard(self)

    def data_received(self, data: bytes) -> None:
        if self.stalled:
            return
        self.buf += data
        self._process()

    def _process(self) -> None:
        while not self.busy and not self.stalled and self.transport is not None:
            if self.state.config.mode == "no_read" and self.buf.startswith(b"POST /v2/models/"):
                self._no_read()
                return
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 65536:
                    self._write(_response(400, error_body("request head too large"), close=True))
                return
            head = bytes(self.buf[:end]).decode("latin-1")
            lines = head.split("\r\n")
            parts = lines[0].split(" ")
            length, close = 0, False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value.strip())
                elif name == "connection" and value.strip().lower() == "close":
                    close = True
            if len(self.buf) < end + 4 + length:
                return
            body = bytes(self.buf[end + 4 : end + 4 + length])
            del self.buf[: end + 4 + length]
            if len(parts) < 3:
                self._write(_response(400, error_body("bad request line"), close=True))
                return
            self._handle(parts[0], parts[1], body, close)

    def _no_read(self) -> None:
        """Stop reading this connection for good (what it already sent is dropped)."""
        self.state.received += 1
        self.state.misbehaved += 1
        self.stalled = True
        self.state.stalled.add(self)
        self.buf.clear()
        if self.transport is not None:
            self.transport.pause_reading()

    def _write(self, data: bytes, close: bool = False) -> None:
        if self.transport is None:
            return
        self.transport.write(data)
        if close:
            self.transport.close()
            self.transport = None

    def _handle(self, method: str, path: str, body: bytes, close: bool) -> None:
        st = self.state
        if method == "POST" and path.startswith("/v2/models/") and path.endswith("/infer"):
            model = path[len("/v2/models/") : -len("/infer")].split("/versions/")[0]
            if st.config.serves(model):
                self._infer(model, close)
            else:
                st.received += 1
                self._answer(404, close, model)
        elif method == "GET" and path in ("/v2/health/ready", "/v2/health/live", "/v2"):
            self._write(_response(200, b'{"ready":true}' if "ready" in path else b"{}", close), close)
        elif method == "GET" and path.startswith("/v2/models/"):
            model = path[len("/v2/models/") :].split("/", 1)[0]
            if not st.config.serves(model):
                body = error_body(f"unknown model '{model}'; served: {st.config.models}")
                self._write(_response(404, body, close), close)
            elif path.endswith("/ready"):
                body = json.dumps({"name": model, "ready": True}).encode()
                self._write(_response(200, body, close), close)
            else:
                self._write(_response(200, json.dumps({"name": model}).encode(), close), close)
        elif method == "GET" and path == "/stub/stats":
            self._write(_response(200, json.dumps(st.stats()).encode(), close), close)
        elif method == "POST" and path == "/stub/config":
            try:
                st.config = replace(st.config, **json.loads(body or b"{}"))
            except (TypeError, ValueError) as exc:
                self._write(_response(400, error_body(f"bad config: {exc}"), close), close)
                return
            for stalled in list(st.stalled):  # let go of what the last misbehaviour held
                if stalled.transport is not None:
                    stalled.transport.abort()
            st.stalled.clear()
            st.reset()
            self._write(_response(200, json.dumps(asdict(st.config)).encode(), close), close)
        else:
            self._write(_response(404, error_body(f"no route {method} {path}"), close), close)

    def _infer(self, model: str, close: bool) -> None:
        st, cfg = self.state, self.state.config
        now = time.monotonic()
        if st.first is None:
            st.first = now
        st.received += 1
        if cfg.mode != "normal":
            self._misbehave(cfg.mode)
            return
        if (cfg.reject_every and st.received % cfg.reject_every == 0) or (
            cfg.capacity and st.held >= cfg.capacity
        ):
            self._answer(503, close)
            return
        due = now + cfg.delay_ms / 1e3
        if cfg.stall_at >= 0 and cfg.stall_s > 0:
            s0 = st.first + cfg.stall_at
            if s0 <= due < s0 + cfg.stall_s:
                due = s0 + cfg.stall_s
        if due <= now:
            self._answer(cfg.status, close, model)
            return
        st.held += 1
        self.busy = True
        self.loop.call_at(due - now + self.loop.time(), self._release, cfg.status, close, model)

    def _misbehave(self, mode: str) -> None:
        self.state.misbehaved += 1
        transport = self.transport
        if mode == "no_answer" or transport is None:
            self.stalled = True  # hold the connection open, never answer
            self.state.stalled.add(self)
            return
        self.transport = None
        if mode == "reset":
            sock = transport.get_extra_info("socket")
            if sock is not None:  # SO_LINGER 0: close() sends RST instead of FIN
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        else:
            transport.close()

    def _release(self, status: int, close: bool, model: str) -> None:
        self.state.held -= 1
        self.busy = False
        self._answer(status, close, model)
        self._process()

    def _answer(self, status: int, close: bool, model: str = "") -> None:
        st = self.state
        st.answered[status] = st.answered.get(status, 0) + 1
        if 200 <= status < 300:
            body = st.ok_body(model)
        else:
            body = error_body({503: "server busy", 504: "deadline exceeded",
                               404: f"unknown model '{model}'"}.get(status, "stub error"))
        self._write(_response(status, body, close), close)


class StubServer:
    """The stub, served from an event loop: ``async with StubServer(cfg) as s: s.url``."""

    def __init__(self, config: StubConfig | None = None, host: str = "127.0.0.1", port: int = 0):
        self.state = StubState(config or StubConfig())
        self.host, self.port = host, port
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> StubServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: StubProtocol(self.state), self.host, self.port, backlog=4096
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> StubServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class StubProcess:
    """The stub in a child process (its own GIL and core): for timing tests and benchmarks."""

    def __init__(self, config: StubConfig | None = None, port: int = 0) -> None:
        self.config = config or StubConfig()
        self.port = port
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> StubProcess:
        cmd = [sys.executable, "-m", "servelab.loadgen.stub", "--port", str(self.port)]
        for k, v in asdict(self.config).items():
            cmd += [f"--{k.replace('_', '-')}", str(v)]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.close()
            raise RuntimeError(f"stub server failed to start: {line!r}")
        self.port = int(line.rsplit(":", 1)[1])
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change the running stub's config (and reset its counters and stall clock)."""
        return _call(f"{self.url}/stub/config", json.dumps(changes).encode())

    def stats(self) -> dict[str, Any]:
        return _call(f"{self.url}/stub/stats")

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> StubProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _call(url: str, data: bytes | None = None) -> dict[str, Any]:
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 (127.0.0.1 only)
        return json.loads(resp.read())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m servelab.loadgen.stub", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port (0 = any free one)")
    add_dataclass_args(parser, StubConfig)
    args = parser.parse_args(argv)
    config = from_args(StubConfig, args)

    async def serve() -> None:
        server = await StubServer(config, args.host, args.port).start()
        print(f"listening on {server.host}:{server.port}", flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
