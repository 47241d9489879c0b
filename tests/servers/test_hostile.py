"""Hostile input against every server (threads, processes, async): each malformed request
gets a 4xx whose message names the field, the server stays up, and the next valid request
succeeds.

* a table of known-bad requests (invalid Unicode in BYTES, deep nesting, absurd shapes and
  batch sizes, wrong JSON types in every field, bad encodings);
* a body over the cap gets a 413 the client can read — even one that keeps sending its body
  slowly after the server answered (the lingering close), and one declared far over the cap;
* slow clients that trickle their headers or body get 408 once the read timeout passes, and a
  connection that sends nothing is closed;
* a property-based fuzz (hypothesis): random JSON, random bytes, and random OIP-shaped bodies
  with wrong types, shapes and sizes — never a 5xx.

The servers use tiny models, a 1 MiB body cap, and a lowered read timeout where tested.
"""

from __future__ import annotations

import gzip
import json
import select
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from servelab.servers.base import Server
from servelab.servers.models import get_servables
from servelab.servers.oip import DTYPES, HEADER_LENGTH

from .helpers import TIMEOUT, read_response, start

HOSTILE_KINDS = ("threads", "processes", "async-thread")
FUZZ_MODELS = ("noop", "mobilenet_v2", "distilbert", "lstm_forecaster")
CAP = 1 << 20  # helpers.start: max_request_mb=1.0
GOOD = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 2],
                               "data": [1.0, 2.0]}]}).encode()


@pytest.fixture(scope="module")
def loaded() -> dict[str, Any]:
    models = get_servables((*FUZZ_MODELS, "sleep"), variant="tiny")
    for m in models.values():
        m.load()
    return models


@pytest.fixture(scope="module", params=HOSTILE_KINDS)
def srv(request: pytest.FixtureRequest, loaded: dict[str, Any]) -> Iterator[Server]:
    server = start(request.param, dict(loaded), workers=1, models=(*FUZZ_MODELS, "sleep"))
    yield server
    server.stop()


@pytest.fixture
def client(srv: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=srv.url, timeout=TIMEOUT) as c:
        yield c


def assert_serving(c: httpx.Client) -> None:
    r = c.post("/v2/models/noop/infer", content=GOOD,
               headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == [1.0, 2.0]
    assert c.get("/v2/health/ready").status_code == 200


def _t(**over: Any) -> dict[str, Any]:
    t: dict[str, Any] = {"name": "input", "datatype": "FP32", "shape": [1, 2], "data": [1.0, 2.0]}
    t.update(over)
    return t


def _b(obj: Any) -> bytes:
    return json.dumps(obj).encode()


BOOL_SIZE = _b({"inputs": [_t(parameters={"binary_data_size": True})]})
SURROGATE = b'{"inputs":[{"name":"text","datatype":"BYTES","shape":[1],"data":["\\ud800 x"]}]}'
CASES: list[tuple[str, str, bytes, dict[str, str], int, str]] = [
    # (id, model, body, extra headers, status, needle in the error)
    ("lone-surrogate", "distilbert", SURROGATE, {}, 400, "'text': BYTES element 0 is not valid Unicode"),
    ("deep-nesting", "noop", b"[" * 100_000, {}, 400, "nested too deeply"),
    ("deep-object", "noop", b'{"a":' * 50_000, {}, 400, "malformed JSON"),
    ("nested-data", "noop", _b({"inputs": [_t(shape=[1, 1], data=[[[[[1.0]]]]])]}), {}, 400,
     "'input': 'data' is nested deeper"),
    ("deep-data", "noop", b'{"inputs":[{"name":"input","datatype":"FP32","shape":[1,1],"data":'
     + b"[" * 900 + b"1" + b"]" * 900 + b"}]}", {}, 400, "'input'"),
    ("huge-dim", "noop", _b({"inputs": [_t(shape=[1, 0, 10**12], data=[])]}), {}, 400,
     "'input': 'shape' has a dimension over"),
    ("huge-rank", "noop", _b({"inputs": [_t(shape=[1] * 40, data=[1.0])]}), {}, 400,
     "'input': 'shape' has 40 dimensions"),
    ("empty-dim", "noop", _b({"inputs": [_t(shape=[1, 0], data=[])]}), {}, 400,
     "'input': shape [1, 0] has an empty dimension"),
    ("huge-batch", "noop", _b({"inputs": [_t(shape=[5000, 1], data=[1.0] * 5000)]}), {}, 400,
     "'input': a batch of 5000 rows"),
    ("bool-dim", "noop", _b({"inputs": [_t(shape=[True, 2])]}), {}, 400, "'input': 'shape'"),
    ("huge-int", "noop", _b({"inputs": [_t(data=[10**400, 1])]}), {}, 400, "'input'"),
    ("over-fp32", "noop", _b({"inputs": [_t(data=[10**40, 1])]}), {}, 400,
     "values out of range for datatype FP32"),
    ("name-list", "noop", _b({"inputs": [_t(name=["input"])]}), {}, 400, "'name' string"),
    ("name-unknown", "noop", _b({"inputs": [_t(name="x" * 10_000)]}), {}, 400, "unknown input"),
    ("datatype-list", "noop", _b({"inputs": [_t(datatype=["FP32"])]}), {}, 400,
     "'input': unknown datatype"),
    ("input-twice", "noop", _b({"inputs": [_t(), _t()]}), {}, 400, "'input' is given twice"),
    ("tensor-params", "noop", _b({"inputs": [_t(parameters=[1])]}), {}, 400,
     "'input': 'parameters' must be an object"),
    ("binary-size-bool", "noop", BOOL_SIZE, {HEADER_LENGTH: str(len(BOOL_SIZE))}, 400,
     "binary_data_size"),
    ("params-list", "noop", _b({"inputs": [_t()], "parameters": []}), {}, 400, "'parameters'"),
    ("priority-str", "noop", _b({"inputs": [_t()], "parameters": {"priority": "high"}}), {}, 400,
     "'priority'"),
    ("priority-nan", "noop", b'{"inputs":[' + _b(_t()) + b'],"parameters":{"priority":NaN}}', {},
     400, "'priority'"),
    ("outputs-dict", "noop", _b({"inputs": [_t()], "outputs": {"name": "output"}}), {}, 400,
     "'outputs' must be a list"),
    ("output-name-list", "noop", _b({"inputs": [_t()], "outputs": [{"name": ["o"]}]}), {}, 400,
     "'outputs'"),
    ("output-params", "noop", _b({"inputs": [_t()], "outputs": [{"name": "output",
                                                                 "parameters": 3}]}), {}, 400,
     "output 'output': 'parameters'"),
    ("output-unknown", "noop", _b({"inputs": [_t()], "outputs": [{"name": "nope"}]}), {}, 400,
     "unknown output 'nope'"),
    ("id-object", "noop", _b({"inputs": [_t()], "id": {"a": 1}}), {}, 400, "'id'"),
    ("not-utf8", "noop", b'{"inputs": "\xff\xfe"}', {}, 400, "malformed JSON"),
    ("header-length-text", "noop", GOOD, {HEADER_LENGTH: "ten"}, 400, HEADER_LENGTH),
    ("header-length-huge", "noop", GOOD, {HEADER_LENGTH: str(10**20)}, 400, HEADER_LENGTH),
    ("bad-gzip", "noop", b"not gzip", {"Content-Encoding": "gzip"}, 400, "not valid gzip"),
    ("gzip-bomb", "noop", gzip.compress(b" " * (4 * CAP)), {"Content-Encoding": "gzip"}, 413,
     "decompressed body exceeds"),
    ("unknown-encoding", "noop", GOOD, {"Content-Encoding": "br"}, 415, "Content-Encoding"),
]


@pytest.mark.parametrize("model,body,headers,status,needle",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_requests_get_a_4xx_naming_the_field(
    srv: Server, client: httpx.Client, model: str, body: bytes, headers: dict[str, str],
    status: int, needle: str,
) -> None:
    r = client.post(f"/v2/models/{model}/infer", content=body,
                    headers={"Content-Type": "application/json", **headers})
    assert r.status_code == status, r.text
    assert needle in r.json()["error"], r.text
    assert_serving(client)


# -- bodies over the cap --------------------------------------------------------------------------
def _connect(srv: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", srv.port), timeout=10)


def test_a_body_over_the_cap_gets_a_413_the_client_can_read(srv: Server) -> None:
    """The client announces 3 MiB (cap 1 MiB) and keeps sending it slowly after the server
    answered: the server answers at once, before the body, and lets the client finish its
    write (no reset) so that it then reads the 413."""
    size = 3 * CAP
    with _connect(srv) as sock:
        sock.sendall(b"POST /v2/models/noop/infer HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: "
                     + str(size).encode() + b"\r\n\r\n")
        time.sleep(0.2)  # the answer is already there, before any body byte
        chunk = b" " * (64 << 10)
        for _ in range(size // len(chunk)):
            sock.sendall(chunk)  # a connection reset would raise here
            time.sleep(0.002)
        status, headers, body = read_response(sock)
    assert status == 413
    assert "exceeds the 1048576-byte cap" in json.loads(body)["error"]
    with httpx.Client(base_url=srv.url, timeout=TIMEOUT) as c:
        r = c.post("/v2/models/noop/infer", content=b" " * (20 * CAP))  # 20 MiB at once
        assert r.status_code == 413 and "exceeds" in r.json()["error"]
        assert_serving(c)


def test_a_body_declared_far_over_the_cap_is_refused_before_it_is_read(srv: Server) -> None:
    t0 = time.monotonic()
    with _connect(srv) as sock:
        sock.sendall(b"POST /v2/models/noop/infer HTTP/1.1\r\nHost: x\r\nContent-Length: "
                     b"99999999999\r\n\r\n")
        status, _, body = read_response(sock)
    assert status == 413 and "99999999999 bytes exceeds" in json.loads(body)["error"]
    assert time.monotonic() - t0 < 2.0


# -- slow clients -------------------------------------------------------------------------------
@pytest.fixture
def short_read_timeout(srv: Server) -> Iterator[float]:
    before = srv.api.read_timeout_s
    srv.api.read_timeout_s = 0.6
    yield 0.6
    srv.api.read_timeout_s = before


def _trickle(sock: socket.socket, data: bytes, every: float, until: float) -> bool:
    """Send ``data`` a byte at a time until the server answers or closes (False), all is sent
    or ``until`` passes."""
    for b in data:
        if time.monotonic() > until or select.select([sock], [], [], 0)[0]:
            return False
        try:
            sock.sendall(bytes([b]))
        except OSError:
            return False
        time.sleep(every)
    return True


@pytest.mark.parametrize("part", ["headers", "body"])
def test_a_slow_client_gets_408_after_the_read_timeout(
    srv: Server, short_read_timeout: float, part: str
) -> None:
    body = GOOD
    head = (b"POST /v2/models/noop/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    with _connect(srv) as sock:
        t0 = time.monotonic()
        if part == "headers":
            _trickle(sock, head, 0.05, t0 + 3.0)
        else:
            sock.sendall(head)
            _trickle(sock, body, 0.05, t0 + 3.0)
        status, headers, reply = read_response(sock)
        waited = time.monotonic() - t0
        assert status == 408, reply
        assert "not received within 0.6 s" in json.loads(reply)["error"]
        assert headers.get("connection", "").lower() == "close"
        assert sock.recv(10) == b""  # and it closed the connection
    assert waited < short_read_timeout + 3.0
    with httpx.Client(base_url=srv.url, timeout=TIMEOUT) as c:
        assert_serving(c)


def test_a_connection_that_sends_nothing_is_closed(srv: Server, short_read_timeout: float) -> None:
    with _connect(srv) as sock:
        t0 = time.monotonic()
        sock.settimeout(5.0)
        data = sock.recv(4096)
        while data:  # (uvicorn answers 408 first; waitress just closes)
            assert data.startswith(b"HTTP/1.1 408") or b"408" in data
            data = sock.recv(4096)
        assert time.monotonic() - t0 < short_read_timeout + 2.0


def test_a_fast_client_is_not_timed_out(srv: Server, short_read_timeout: float) -> None:
    """Keep-alive requests spread over more than the read timeout, each sent promptly, and a
    request whose service takes longer than the read timeout: all answered 200."""
    with httpx.Client(base_url=srv.url, timeout=TIMEOUT) as c:
        for _ in range(4):
            assert_serving(c)
            time.sleep(0.25)
        body = json.dumps({"inputs": [{"name": "seconds", "datatype": "FP32", "shape": [1, 1],
                                       "data": [1.0]}]}).encode()
        assert c.post("/v2/models/sleep/infer", content=body).status_code == 200


# -- property-based fuzz --------------------------------------------------------------------------
scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8)
           | st.sampled_from(["\ud800", "a\udfff b", "", "FP32", "input"]))
json_values = st.recursive(
    scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c,
                                                                  max_size=4),
    max_leaves=12,
)
dims = st.integers(-2, 6) | st.sampled_from([0, 2**31, 10**20]) | json_values
tensors = st.fixed_dictionaries(
    {"name": st.sampled_from(["input", "image", "window", "text", "x"]) | json_values,
     "datatype": st.sampled_from([*DTYPES, "COMPLEX", "fp32"]) | json_values,
     "shape": st.lists(dims, max_size=5) | json_values,
     "data": st.lists(scalars | st.lists(scalars, max_size=4), max_size=12) | json_values},
    optional={"parameters": st.dictionaries(st.sampled_from(["binary_data_size", "x"]),
                                            scalars) | json_values},
)
oip_bodies = st.fixed_dictionaries(
    {"inputs": st.lists(tensors, max_size=3) | json_values},
    optional={
        "id": json_values,
        "parameters": st.dictionaries(
            st.sampled_from(["priority", "timeout_ms", "timeout", "binary_data_output"]),
            scalars, max_size=3) | json_values,
        "outputs": st.lists(st.fixed_dictionaries(
            {"name": st.text(max_size=6) | json_values},
            optional={"parameters": json_values}), max_size=2) | json_values,
    },
)
headers = st.fixed_dictionaries({}, optional={
    HEADER_LENGTH: st.sampled_from(["0", "5", "-1", "x", "99999999"]),
    "Content-Encoding": st.sampled_from(["gzip", "deflate", "identity", "zstd"]),
})
FUZZ = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def _fuzz_post(c: httpx.Client, model: str, body: bytes, hdrs: dict[str, str]) -> None:
    r = c.post(f"/v2/models/{model}/infer", content=body,
               headers={"Content-Type": "application/json", **hdrs})
    if r.status_code == 504:  # a deadline the request itself set: a refusal, not a failure
        assert "deadline" in r.json()["error"], r.text
        return
    assert r.status_code < 500, (r.status_code, r.text, body[:300])
    if r.status_code >= 400:
        error = r.json()["error"]
        assert isinstance(error, str) and error


@FUZZ
@given(model=st.sampled_from(FUZZ_MODELS), obj=oip_bodies, hdrs=headers)
def test_fuzz_oip_shaped_bodies_never_get_a_5xx(
    client: httpx.Client, model: str, obj: Any, hdrs: dict[str, str]
) -> None:
    _fuzz_post(client, model, json.dumps(obj).encode(), hdrs)


@FUZZ
@given(model=st.sampled_from(FUZZ_MODELS), obj=json_values,
       raw=st.binary(max_size=64), as_raw=st.booleans())
def test_fuzz_random_json_and_bytes_never_get_a_5xx(
    client: httpx.Client, model: str, obj: Any, raw: bytes, as_raw: bool
) -> None:
    _fuzz_post(client, model, raw if as_raw else json.dumps(obj).encode(), {})


def test_after_the_fuzz_the_server_is_up_and_serves(srv: Server, client: httpx.Client) -> None:
    assert_serving(client)
    assert srv.engine.inflight == 0
    text = client.get("/metrics").text
    assert 'status="bad_request"' in text
    assert 'status="error"' not in text  # no request failed inside the server
    np.testing.assert_equal(client.get("/v2/health/live").json(), {"live": True})
