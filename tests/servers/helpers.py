"""Helpers shared by the live-server test modules: start a server with tiny models on an
ephemeral 127.0.0.1 port, build and send OIP requests, wait for conditions, run a request in
the background."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np

from servelab.core.config import ServerConfig
from servelab.servers.base import SETUPS, ServeOptions, Server, make_server
from servelab.servers.oip import encode_request

ZOO = ("mobilenet_v2", "distilbert", "lstm_forecaster")
MODELS = (*ZOO, "noop", "sleep")
KINDS = SETUPS
TIMEOUT = httpx.Timeout(60.0)


def start(kind: str, loaded: dict[str, Any] | None = None, **config: Any) -> Server:
    cfg = ServerConfig(**{**KINDS[kind], **config})
    options = ServeOptions(port=0, variant="tiny", max_request_mb=1.0, drain_timeout_s=10)
    return make_server(cfg, options, models=loaded).start()


def infer_body(
    inputs: dict[str, np.ndarray], id: str | None = None, **parameters: Any
) -> tuple[bytes, dict[str, str]]:
    return encode_request(inputs, id=id, parameters=parameters or None)


def post(srv: Server, model: str, body: bytes, headers: dict[str, str] | None = None,
         client: httpx.Client | None = None) -> httpx.Response:
    c = client or httpx.Client(timeout=TIMEOUT)
    try:
        return c.post(f"{srv.url}/v2/models/{model}/infer", content=body,
                      headers=headers or {"Content-Type": "application/json"})
    finally:
        if client is None:
            c.close()


def sleep_request(
    srv: Server, seconds: float, id: str | None = None, **parameters: Any
) -> httpx.Response:
    body, headers = infer_body({"seconds": np.array([[seconds]], np.float32)}, id, **parameters)
    return post(srv, "sleep", body, headers)


def stats(srv: Server) -> dict[str, Any]:
    return httpx.get(f"{srv.url}/servelab/stats", timeout=TIMEOUT).json()  # type: ignore[no-any-return]


def wait_until(cond: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class Background:
    """Run a request in a thread; ``.result`` once joined."""

    def __init__(self, fn: Callable[[], Any]):
        self.result: Any = None
        self.error: BaseException | None = None
        self.done_at = 0.0

        def run() -> None:
            try:
                self.result = fn()
            except BaseException as exc:  # pragma: no cover - surfaced by get()
                self.error = exc
            self.done_at = time.monotonic()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def get(self, timeout: float = 60.0) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "request did not finish"
        if self.error is not None:
            raise self.error
        return self.result


def engine_settled(srv: Server, inflight: int, queued: int) -> Callable[[], bool]:
    return lambda: srv.engine.inflight == inflight and srv.engine.queue_len() == queued


def read_response(sock: socket.socket, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """One HTTP response (Content-Length framed) from ``sock``."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response: {buf!r}")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    n = int(headers.get("content-length", "0"))
    while len(body) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split(" ")[1]), headers, body[:n]
