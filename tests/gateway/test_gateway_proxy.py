"""The gateway's front: request parsing, OIP forwarding to a live backend, its own endpoints,
the retry on a failed backend connection, and the shape of ``/servelab/meta``."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import httpx
import numpy as np
import pytest

from servelab.gateway.metrics import GatewayMetrics
from servelab.gateway.proxy import GatewayServer, HttpRequest, RequestParser
from servelab.gateway.upstream import UpstreamError
from servelab.gateway.windows import WindowCollector

from .gateway_helpers import ARMS, NOOP_BODY, NOOP_HEADERS, GatewayThread


def test_parser_splits_pipelined_requests_and_answers_expect_itself() -> None:
    p = RequestParser(max_body=1 << 20)
    one = b"POST /v2/models/noop/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
    two = b"GET /v2 HTTP/1.1\r\nHost: x\r\n\r\n"
    reqs = p.feed(one[:20]) + p.feed(one[20:] + two[:5]) + p.feed(two[5:])
    assert [(r.method, r.target, r.body_len) for r in reqs] == [
        (b"POST", b"/v2/models/noop/infer", 3), (b"GET", b"/v2", 0)]
    assert reqs[0].raw == one and reqs[1].raw == two and reqs[0].keep_alive
    (exp,) = RequestParser(1 << 20).feed(
        b"POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nz")
    assert b"expect" not in exp.raw.lower() and exp.raw.endswith(b"\r\n\r\nz")
    (close,) = RequestParser(1 << 20).feed(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert not close.keep_alive


def test_parser_reassembles_a_chunked_body_fed_byte_by_byte() -> None:
    p = RequestParser(1 << 20)
    data = (b"POST /v2/models/noop/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Length: 999\r\n\r\n4;ext=1\r\nWiki\r\n6\r\npedia \r\nE\r\nin \r\n\r\nchunks."
            b"\r\n0\r\nX-Trailer: t\r\n\r\nGET / HTTP/1.1\r\n\r\n")
    reqs = [r for i in range(len(data)) for r in p.feed(data[i:i + 1])]
    assert [r.method for r in reqs] == [b"POST", b"GET"] and not p.partial
    body = b"Wikipedia in \r\n\r\nchunks."
    assert reqs[0].body_len == len(body) and reqs[0].raw.endswith(b"\r\n\r\n" + body)
    head = reqs[0].raw[: -len(body)].lower()
    assert b"transfer-encoding" not in head and b"content-length: 999" not in head
    assert f"content-length: {len(body)}".encode() in head


@pytest.mark.parametrize("head, status", [
    (b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 411),
    (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n", 400),
    (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n200000\r\n", 413),
    (b"POST /x HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413),
    (b"NONSENSE\r\n\r\n", 400),
])
def test_parser_refuses_what_it_cannot_relay(head: bytes, status: int) -> None:
    with pytest.raises(ValueError) as exc:
        RequestParser(max_body=1 << 20).feed(head)
    assert exc.value.args[1] == status


def test_forwards_oip_and_answers_its_own_endpoints(gateway: GatewayThread) -> None:
    url = gateway.url
    with httpx.Client(base_url=url, timeout=30) as c:
        r = c.post("/v2/models/noop/infer", content=NOOP_BODY, headers=NOOP_HEADERS)
        assert r.status_code == 200
        out = r.json()["outputs"][0]
        assert out["name"] == "output" and out["data"] == list(np.arange(16, dtype=float))
        assert c.get("/v2/models/noop").json()["name"] == "noop"
        assert c.post("/v2/models/nope/infer", content=NOOP_BODY,
                      headers=NOOP_HEADERS).status_code == 404
        assert c.post("/v2/models/noop/infer", content=b"{bad json").status_code == 400
        assert c.get("/v2/health/live").json() == {"live": True}
        assert c.get("/v2/health/ready").status_code == 200
        assert c.post("/v2/health/ready").status_code == 405
        metrics = c.get("/metrics").text
        assert 'servelab_gateway_requests_total{model="noop",status="200"}' in metrics
        page = c.get("/dashboard")
        assert page.status_code == 200 and "<canvas" in page.text
        assert "poll" in c.get("/dashboard/dashboard.js").text
    # Pipelined on one raw connection: answered in order, the second an Expect request.
    with socket.create_connection(("127.0.0.1", gateway.front.port), timeout=30) as s:
        head = ("POST /v2/models/noop/infer HTTP/1.1\r\nHost: gw\r\nContent-Type: "
                f"application/json\r\nContent-Length: {len(NOOP_BODY)}\r\n\r\n").encode()
        s.sendall(head + NOOP_BODY + b"GET /v2/health/live HTTP/1.1\r\nHost: gw\r\n\r\n")
        data = b""
        while data.count(b"HTTP/1.1 200") < 2:
            chunk = s.recv(65536)
            assert chunk, f"connection closed early: {data!r}"
            data += chunk
        assert data.index(b'"model_name"') < data.index(b'{"live": true}')


def test_a_chunked_infer_is_relayed_and_a_trickling_client_gets_408(
        gateway: GatewayThread) -> None:
    def pieces():
        for i in range(0, len(NOOP_BODY), 7):
            yield NOOP_BODY[i:i + 7]

    headers = {k: v for k, v in NOOP_HEADERS.items() if k.lower() != "content-length"}
    r = httpx.post(f"{gateway.url}/v2/models/noop/infer", content=pieces(), headers=headers,
                   timeout=30)  # an iterator: httpx sends it chunked
    assert r.status_code == 200 and r.json()["outputs"][0]["name"] == "output"
    front = gateway.front
    old, front.read_timeout_s = front.read_timeout_s, 0.3
    try:
        with socket.create_connection(("127.0.0.1", front.port), timeout=30) as s:
            s.sendall(b"POST /v2/models/noop/infer HTTP/1.1\r\nHost: gw\r\nContent-Len")
            data = b""
            while chunk := s.recv(65536):  # the gateway answers, then closes
                data += chunk
        assert data.startswith(b"HTTP/1.1 408") and b"0.3 s" in data
        assert "servelab_gateway_read_timeouts_total 1.0" in httpx.get(
            f"{gateway.url}/metrics", timeout=30).text
    finally:
        front.read_timeout_s = old


def test_meta_describes_arms_backends_and_switches(gateway: GatewayThread) -> None:
    meta = httpx.get(f"{gateway.url}/servelab/meta", timeout=30).json()
    assert set(meta) >= {"current", "policy", "arms", "switches", "backends", "timings",
                         "window_s", "switching"}
    assert meta["current"]["label"] in ARMS.labels and meta["current"]["backend"]
    assert [a["id"] for a in meta["arms"]] == ARMS.ids
    assert set(meta["arms"][0]) == {"arm", "id", "label", "estimate", "live_windows",
                                    "live_mean_reward"}
    first = meta["switches"][0]
    assert first["kind"] == "start" and first["reason"]
    assert set(first) >= {"t", "from", "to", "from_label", "to_label", "features", "reason",
                          "policy_reason", "seconds"}
    assert any(t["step"] == "start" and t["seconds"] > 0 for t in meta["timings"])
    windows = httpx.get(f"{gateway.url}/servelab/timeseries?n=5", timeout=30).json()
    assert windows and {"t1", "offered", "p50_s", "p99_s", "throughput", "norm", "mix",
                        "arm", "context"} <= set(windows[-1])
    json.dumps(meta)


class _FakeBackend:
    def __init__(self, name: str, fail: bool) -> None:
        self.name, self.fail, self.state, self.url, self.calls = name, fail, "ready", name, 0

    async def request(self, data: bytes) -> tuple[int, bytes, bool]:
        self.calls += 1
        if self.fail:
            raise UpstreamError(f"{self.name} reset the connection")
        return 200, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", True


class _Router:
    def __init__(self, *backends: _FakeBackend) -> None:
        self.backends = list(backends)
        self.collector = WindowCollector()

    @property
    def current(self) -> Any:  # the switch happens while the first attempt is in flight
        return self.backends.pop(0) if len(self.backends) > 1 else self.backends[0]

    def meta(self) -> dict[str, Any]:
        return {}

    def timeseries(self, n: int) -> list[dict[str, Any]]:
        return []


def test_a_failed_backend_connection_is_retried_once_on_the_current_backend() -> None:
    req = HttpRequest(b"POST", b"/v2/models/noop/infer", b"raw", 0, True)
    old, new = _FakeBackend("old", fail=True), _FakeBackend("new", fail=False)
    gw = GatewayServer(_Router(old, new), GatewayMetrics())
    raw, keep_alive = asyncio.run(gw.forward(req))
    assert raw.endswith(b"ok") and keep_alive and (old.calls, new.calls) == (1, 1)
    assert gw.metrics.retries._value.get() == 1
    dead = _FakeBackend("dead", fail=True)
    raw, _ = asyncio.run(GatewayServer(_Router(dead), GatewayMetrics()).forward(req))
    assert raw.startswith(b"HTTP/1.1 502") and dead.calls == 2
