"""One contract suite for every live server (threads, processes, async with each offload).

Servers run in this process on ephemeral 127.0.0.1 ports with tiny models (the process pool's
zygote is a subprocess).  The OIP round trip uses the unmodified ``tritonclient`` HTTP client;
error paths use raw HTTP so that the exact status codes and headers are checked.  Timing
assertions only bound from above by generous margins (the machine is shared).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from servelab.core.requests import RECORD_COLUMNS
from servelab.servers.base import Server
from servelab.servers.models import get_servables
from servelab.servers.oip import encode_request

from .helpers import (
    KINDS,
    MODELS,
    TIMEOUT,
    ZOO,
    Background,
    engine_settled,
    infer_body,
    post,
    sleep_request,
    start,
    wait_until,
)


# -- helpers -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_models() -> dict[str, Any]:
    models = get_servables(MODELS, variant="tiny")
    for m in models.values():
        m.load()
    return models


# -- the contract suite over every server ---------------------------------------------------------
@pytest.fixture(scope="module", params=list(KINDS))
def server(request: pytest.FixtureRequest, tiny_models: dict[str, Any]) -> Iterator[Server]:
    srv = start(request.param, dict(tiny_models), workers=2, max_batch=4, batch_timeout_ms=2,
                models=MODELS)
    yield srv
    srv.stop()


def triton_inputs(model: Any, x: dict[str, np.ndarray], binary: bool) -> list[Any]:
    out = []
    for spec in model.inputs:
        t = triton.InferInput(spec.name, list(x[spec.name].shape), spec.datatype)
        t.set_data_from_numpy(x[spec.name], binary_data=binary)
        out.append(t)
    return out


def assert_outputs_equal(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert set(got) == set(want)
    for k in want:
        assert got[k].shape == want[k].shape, k
        if want[k].dtype.kind == "f":
            np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-5, err_msg=k)
        else:
            np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_health_and_metadata_through_tritonclient(server: Server, tiny_models: dict) -> None:
    client = triton.InferenceServerClient(server.url.removeprefix("http://"),
                                          network_timeout=60.0)
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        for name in MODELS:
            assert client.is_model_ready(name)
            meta = client.get_model_metadata(name)
            assert meta["name"] == name
            assert meta["inputs"] == [s.to_oip() for s in tiny_models[name].inputs]
            assert meta["outputs"] == [s.to_oip() for s in tiny_models[name].outputs]
        assert not client.is_model_ready("no_such_model")
    finally:
        client.close()


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_round_trip_equals_direct_call(
    server: Server, tiny_models: dict, binary: bool
) -> None:
    """Every tiny zoo model through an unmodified OIP client gives the model's own output."""
    client = triton.InferenceServerClient(server.url.removeprefix("http://"),
                                          network_timeout=60.0)
    rng = np.random.default_rng(7)
    try:
        for name in ZOO:
            model = tiny_models[name]
            x = model.make_input(None, rng)
            outputs = [triton.InferRequestedOutput(s.name, binary_data=binary)
                       for s in model.outputs]
            result = client.infer(name, triton_inputs(model, x, binary), outputs=outputs)
            want = model.infer([x])[0]
            assert_outputs_equal({k: result.as_numpy(k) for k in want}, want)
    finally:
        client.close()


def test_multi_row_and_concurrent_requests(server: Server, tiny_models: dict) -> None:
    """A request of 3 rows answers 3 rows; concurrent requests (batched together) each get
    their own answer."""
    model = tiny_models["mobilenet_v2"]
    rng = np.random.default_rng(3)
    xs = [model.make_input(None, rng) for _ in range(10)]
    three = {"image": np.concatenate([x["image"] for x in xs[:3]])}
    r = post(server, "mobilenet_v2", *infer_body(three))
    assert r.status_code == 200, r.text
    got = {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in r.json()["outputs"]}
    want = [model.infer([x])[0] for x in xs]
    np.testing.assert_allclose(got["probabilities"],
                               np.concatenate([w["probabilities"] for w in want[:3]]), atol=1e-5)

    def one(i: int) -> httpx.Response:
        return post(server, "mobilenet_v2", *infer_body(xs[i], **{"priority": i % 2}))

    jobs = [Background(lambda i=i: one(i)) for i in range(len(xs))]
    for i, job in enumerate(jobs):
        resp = job.get()
        assert resp.status_code == 200, resp.text
        out = {o["name"]: o for o in resp.json()["outputs"]}
        np.testing.assert_allclose(np.array(out["probabilities"]["data"]),
                                   want[i]["probabilities"].ravel(), atol=1e-5)


def test_bad_inputs_get_clear_errors_and_the_server_keeps_serving(
    server: Server, tiny_models: dict
) -> None:
    image = tiny_models["mobilenet_v2"].make_input(None, np.random.default_rng(0))["image"]
    good_body, good_headers = infer_body({"image": image})
    with httpx.Client(timeout=TIMEOUT) as c:
        def check(model: str, body: bytes, status: int, needle: str,
                  headers: dict[str, str] | None = None) -> None:
            r = post(server, model, body, headers, client=c)
            assert r.status_code == status, (r.status_code, r.text)
            assert needle in r.json()["error"], r.text

        check("mobilenet_v2", b"{not json", 400, "malformed JSON")
        check("mobilenet_v2", b"[1, 2]", 400, "JSON object")
        check("mobilenet_v2", b'{"inputs": []}', 400, "'inputs'")
        wrong_dtype = json.dumps({"inputs": [{
            "name": "image", "datatype": "FP32", "shape": [1, 32, 32, 3],
            "data": [0.5] * 3072}]}).encode()
        check("mobilenet_v2", wrong_dtype, 400, "'image'")
        wrong_shape = json.dumps({"inputs": [{
            "name": "image", "datatype": "UINT8", "shape": [1, 16, 16, 3],
            "data": [1] * 768}]}).encode()
        check("mobilenet_v2", wrong_shape, 400, "'image': shape")
        short = json.dumps({"inputs": [{
            "name": "image", "datatype": "UINT8", "shape": [1, 32, 32, 3], "data": [1] * 5}]})
        check("mobilenet_v2", short.encode(), 400, "'image'")
        unknown_input = json.dumps({"inputs": [{
            "name": "pixels", "datatype": "UINT8", "shape": [1], "data": [1]}]}).encode()
        check("mobilenet_v2", unknown_input, 400, "'pixels'")
        text_as_numbers = json.dumps({"inputs": [{
            "name": "text", "datatype": "BYTES", "shape": [1], "data": [5]}]}).encode()
        check("distilbert", text_as_numbers, 400, "'text'")
        bad_priority, h = infer_body({"image": image}, priority="high")
        check("mobilenet_v2", bad_priority, 400, "'priority'", h)
        bad_timeout, h = infer_body({"image": image}, timeout_ms=-5)
        check("mobilenet_v2", bad_timeout, 400, "'timeout_ms'", h)
        check("no_such_model", good_body, 404, "unknown model", good_headers)
        big = np.zeros((400, 32, 32, 3), np.uint8)  # 1.2 MiB binary > the 1 MiB cap
        big_body, big_headers = encode_request({"image": big}, binary=True)
        check("mobilenet_v2", big_body, 413, "exceeds", big_headers)
        r = c.get(f"{server.url}/v2/models/no_such_model")
        assert r.status_code == 404 and "unknown model" in r.json()["error"]
        r = c.get(f"{server.url}/v2/no/such/endpoint")
        assert r.status_code == 404
        # ...and it still serves.
        r = post(server, "mobilenet_v2", good_body, good_headers, client=c)
        assert r.status_code == 200, r.text


def test_metrics_and_trace(server: Server) -> None:
    body, headers = infer_body({"input": np.ones((1, 4), np.float32)})
    assert post(server, "noop", body, headers).status_code == 200
    text = httpx.get(f"{server.url}/metrics", timeout=TIMEOUT).text
    for name in ("servelab_requests_total", "servelab_queue_seconds_bucket",
                 "servelab_compute_seconds_bucket", "servelab_request_seconds_bucket",
                 "servelab_batch_size_bucket", "servelab_queue_depth", "servelab_inflight",
                 "servelab_lock_wait_seconds", "servelab_ipc_seconds",
                 "servelab_worker_restarts_total"):
        assert name in text, name
    assert 'servelab_requests_total{model="noop",status="ok"}' in text
    records = httpx.get(f"{server.url}/servelab/trace", timeout=TIMEOUT).json()
    noop = [r for r in records if r["model"] == "noop" and r["status"] == "ok"]
    assert noop
    rec = noop[-1]
    for col in (*RECORD_COLUMNS, "cpu_util_at_arrival", "compute_s", "queue_s"):
        assert col in rec, col
    assert rec["enqueue"] <= rec["start"] <= rec["end"]
    assert rec["worker"] >= 0 and rec["batch_size"] >= 1
    assert rec["config_id"] == server.config.config_id


# -- overload, deadlines and scheduling (small servers, the sleep model) --------------------------
SCHEDULING_KINDS = ("threads", "processes", "async-thread")


@pytest.fixture(scope="module")
def small(request: pytest.FixtureRequest) -> Iterator[Server]:
    """One worker, room for two queued requests, the sleep model; ``(kind, scheduler)``."""
    kind, scheduler = request.param
    srv = start(kind, workers=1, queue_capacity=2, scheduler=scheduler, models=("sleep",))
    yield srv
    srv.stop()


def on_small(*schedulers: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize(
        "small", [(k, s) for s in schedulers for k in SCHEDULING_KINDS], indirect=True,
        ids=lambda p: f"{p[0]}-{p[1]}",
    )


def _occupy(srv: Server, seconds: float) -> Background:
    """Start a request that holds the only worker for ``seconds``."""
    blocker = Background(lambda: sleep_request(srv, seconds, id="blocker"))
    wait_until(engine_settled(srv, inflight=1, queued=0), what="blocker started")
    return blocker


@on_small("fifo")
def test_overload_answers_503_with_retry_after(small: Server) -> None:
    blocker = _occupy(small, 2.0)
    queued = [Background(lambda: sleep_request(small, 0.01)) for _ in range(2)]
    wait_until(engine_settled(small, inflight=3, queued=2), what="queue full")
    r = sleep_request(small, 0.01)
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) >= 1
    assert "queue full" in r.json()["error"]
    assert blocker.get().status_code == 200
    assert all(q.get().status_code == 200 for q in queued)
    assert sleep_request(small, 0.0).status_code == 200  # still serving


@on_small("fifo")
def test_deadline_answers_504_without_waiting_past_it(small: Server) -> None:
    blocker = _occupy(small, 3.0)
    t0 = time.monotonic()
    r = sleep_request(small, 0.01, timeout_ms=300, id="late")
    waited = time.monotonic() - t0
    assert r.status_code == 504, r.text
    assert "deadline" in r.json()["error"]
    assert waited < 2.5, f"waited {waited:.2f} s for a 0.3 s deadline behind a 3 s request"
    assert blocker.get().status_code == 200
    rec = [x for x in small.engine.trace() if x["oip_id"] == "late"][0]
    assert rec["status"] == "timeout" and rec["worker"] == -1
    assert sleep_request(small, 0.0, timeout_ms=0).status_code == 504  # cannot be met at all


@on_small("fifo", "priority")
def test_queue_order_follows_the_policy(small: Server) -> None:
    """Behind a busy worker, a low-priority request arrives before a high-priority one:
    FIFO serves them in arrival order, Priority serves the urgent one first."""
    blocker = _occupy(small, 1.5)
    low = Background(lambda: sleep_request(small, 0.01, priority=5, id="low"))
    wait_until(engine_settled(small, inflight=2, queued=1), what="low queued")
    high = Background(lambda: sleep_request(small, 0.01, priority=0, id="high"))
    wait_until(engine_settled(small, inflight=3, queued=2), what="high queued")
    for job in (blocker, low, high):
        assert job.get().status_code == 200
    ends = {r["oip_id"]: r["end"] for r in small.engine.trace() if r["oip_id"] in ("low", "high")}
    if small.config.scheduler == "priority":
        assert ends["high"] < ends["low"]
    else:
        assert ends["low"] < ends["high"]


@on_small("mlfq")
def test_mlfq_preempts_a_long_request(small: Server) -> None:
    """MLFQ stops a long request at a stage boundary when a new one waits; the short one
    finishes first and the long one resumes (in another process, for the process pool)."""
    long = _occupy(small, 1.2)  # 4 stages of 0.3 s; quanta 0.02 / 0.1 s
    short = Background(lambda: sleep_request(small, 0.02, id="short"))
    assert short.get().status_code == 200
    assert long.get().status_code == 200
    recs = {r["oip_id"]: r for r in small.engine.trace() if r["oip_id"] in ("short", "blocker")}
    assert recs["short"]["end"] < recs["blocker"]["end"]
    assert recs["blocker"]["preemptions"] >= 1
    assert "servelab_preemptions_total" in httpx.get(f"{small.url}/metrics").text


# -- graceful drain on SIGTERM (the `servelab serve` process) -------------------------------------
@pytest.mark.parametrize("kind", ["threads", "processes", "async"])
def test_sigterm_drains_in_flight_requests_then_exits(kind: str, tmp_path: Any) -> None:
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "servelab.cli", "serve", "--concurrency", kind,
         "--workers", "1", "--models", "sleep", "noop", "--variant", "tiny", "--port", "0",
         "--queue-capacity", "8", "--drain-timeout-s", "30",
         "--trace-out", str(tmp_path / "trace.parquet")],
        stdout=subprocess.PIPE, stderr=log, text=True,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert "ready at http://127.0.0.1:" in line, (line, (tmp_path / "server.log").read_text())
        url = line.strip().rsplit(" ", 1)[-1]

        def sleepy(i: int) -> httpx.Response:
            seconds = 1.5 if i == 0 else 0.2  # the first holds the worker while others queue
            body, headers = infer_body({"seconds": np.array([[seconds]], np.float32)}, id=str(i))
            return httpx.post(f"{url}/v2/models/sleep/infer", content=body, headers=headers,
                              timeout=TIMEOUT)

        inflight = [Background(lambda: sleepy(0))]
        wait_until(lambda: httpx.get(f"{url}/servelab/stats").json()["inflight"] == 1,
                   what="first request admitted")
        inflight += [Background(lambda i=i: sleepy(i)) for i in (1, 2)]
        wait_until(lambda: httpx.get(f"{url}/servelab/stats").json()["inflight"] == 3,
                   what="3 requests admitted")
        proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "draining" in (tmp_path / "server.log").read_text(), what="draining")
        try:
            late = sleepy(99)
            assert late.status_code == 503, late.text
        except httpx.TransportError:
            pass  # or the listener is already closed: refused either way
        assert [b.get().status_code for b in inflight] == [200, 200, 200]
        assert proc.wait(timeout=60) == 0
        assert (tmp_path / "trace.parquet").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_drain_is_bounded_by_its_timeout(tiny_models: dict) -> None:
    srv = start("threads", workers=1, models=("sleep",))
    stuck = Background(lambda: sleep_request(srv, 4.0))
    wait_until(engine_settled(srv, inflight=1, queued=0), what="started")
    t0 = time.monotonic()
    assert srv.shutdown(drain_timeout=0.3) is False
    assert time.monotonic() - t0 < 3.9
    r = stuck.get()
    assert r.status_code == 503


def test_a_bad_request_in_a_batch_fails_alone(tiny_models: dict) -> None:
    """Rows that pass the protocol check but fail preprocessing (the sleep model refuses
    negative seconds) fail their own request (400); batch mates succeed."""
    srv = start("threads", workers=1, max_batch=8, batch_timeout_ms=200, models=("sleep",))
    try:
        jobs = [Background(lambda s=s: sleep_request(srv, s)) for s in (0.01, -1.0, 0.02)]
        codes = [j.get().status_code for j in jobs]
        assert codes == [200, 400, 200]
    finally:
        srv.stop()


def test_tritonclient_sees_overload_and_deadline_errors() -> None:
    srv = start("threads", workers=1, queue_capacity=1, models=("sleep",))
    client = triton.InferenceServerClient(srv.url.removeprefix("http://"), network_timeout=60.0)
    try:
        blocker = _occupy(srv, 2.0)
        x = triton.InferInput("seconds", [1, 1], "FP32")
        x.set_data_from_numpy(np.array([[0.01]], np.float32))
        with pytest.raises(InferenceServerException, match="deadline"):
            client.infer("sleep", [x], timeout=100_000)  # Triton's timeout, microseconds
        assert blocker.get().status_code == 200
    finally:
        client.close()
        srv.stop()


@pytest.mark.parametrize("kernel", ["c-release", "c-hold", "python"])
@pytest.mark.parametrize("kind", ["threads", "processes"])
def test_servers_serve_with_the_ffi_kernels(kind: str, kernel: str, tiny_models: dict) -> None:
    """``--kernel`` swaps in the C / NumPy kernels; outputs match the torch model."""
    rng = np.random.default_rng(3)
    srv = start(kind, workers=1, kernel=kernel, models=("mobilenet_v2", "lstm_forecaster"))
    try:
        for name, out in (("mobilenet_v2", "probabilities"), ("lstm_forecaster", "forecast")):
            inputs = tiny_models[name].make_input(None, rng)
            r = post(srv, name, infer_body(inputs)[0])
            assert r.status_code == 200, r.text
            outputs = {o["name"]: o["data"] for o in r.json()["outputs"]}
            got = np.asarray(outputs[out])
            want = tiny_models[name].infer([inputs])[0][out].reshape(-1)
            np.testing.assert_allclose(got, want, atol=1e-4)
        for name in ("mobilenet_v2", "lstm_forecaster"):
            assert getattr(srv.models[name], "kernel", None) == kernel  # really swapped in
    finally:
        srv.stop()
