"""The shared engine without HTTP: admission, deadlines, batching, preemption, completion —
and the pieces executors share (Work, the IPC codec)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from servelab.core.config import ServerConfig
from servelab.core.requests import RECORD_COLUMNS
from servelab.servers.engine import Engine
from servelab.servers.ipc import Arena, dumps, loads
from servelab.servers.models import get_servable
from servelab.servers.runner import Work, split_outputs, split_rows
from servelab.servers.tickets import ServeError

ROW = [{"x": np.zeros((1, 2), np.float32)}]


def engine(**kw) -> Engine:
    return Engine(ServerConfig(**kw), sample_cpu=False)


@pytest.fixture
def eng():
    e = engine(queue_capacity=3, max_batch=4)
    yield e
    e.close()


def test_admission_is_bounded_and_refuses_while_draining(eng: Engine) -> None:
    for _ in range(3):
        eng.submit("a", ROW)
    with pytest.raises(ServeError) as info:
        eng.submit("a", ROW)
    assert info.value.outcome == "rejected" and info.value.retry_after >= 1
    job = eng.take(timeout=1)
    assert job is not None and len(job.requests) == 3
    eng.stop_intake()
    with pytest.raises(ServeError, match="shutting down"):
        eng.submit("a", ROW)
    statuses = [r["status"] for r in eng.trace()]
    assert statuses == ["rejected", "rejected"]


def test_a_queued_request_expires_at_its_deadline(eng: Engine) -> None:
    req = eng.submit("a", ROW, timeout_ms=50)
    assert req.payload.wait(5.0), "not expired"
    assert req.payload.outcome == "timeout" and req.status == "timeout"
    assert eng.queue_len() == 0 and eng.inflight == 0
    with pytest.raises(ServeError) as info:
        eng.submit("a", ROW, timeout_ms=0)
    assert info.value.outcome == "timeout"
    rec = eng.trace()[0]
    assert set(RECORD_COLUMNS) <= set(rec) and rec["status"] == "timeout"


def test_time_bounded_admission_sheds_at_the_bound_and_refuses_a_backlog() -> None:
    """``max_queue_wait_ms`` on a fake clock: a queued request is answered 503 (rejected, with
    Retry-After) the instant it has waited the bound; once dispatches show the queue drains
    slower than the bound allows, a newcomer is refused at once, and the front door's question
    (:meth:`Engine.refusal`) gets the same answer."""
    now = [0.0]
    e = Engine(ServerConfig(workers=1, max_queue_wait_ms=100.0), sample_cpu=False,
               clock=lambda: now[0], reaper=False)
    try:
        reqs = [e.submit("a", ROW) for _ in range(4)]
        assert e.refusal() is None
        now[0] = 0.08
        e.take(timeout=0)  # one entry in 80 ms: 3 queued x 80 ms > 100 ms
        error = e.refusal()
        assert error is not None and "would wait about 240 ms" in str(error)
        with pytest.raises(ServeError, match="over the server's 100 ms bound") as info:
            e.submit("a", ROW)
        assert info.value.outcome == "rejected" and info.value.retry_after >= 1
        now[0] = 0.1
        assert e.reap() == 3  # the three still queued waited 100 ms: shed
        for r in reqs[1:]:
            t = r.payload
            assert (t.outcome, r.status) == ("rejected", "rejected") and t.retry_after >= 1
            assert "shed after 100 ms in the queue" in t.error
        assert e.queue_len() == 0 and e.refusal() is None
        # Time in the front end counts: 90 ms there leaves 10 ms; 100 ms there, none.
        late = e.submit("a", ROW, waited=0.09)
        assert late.arrival == pytest.approx(0.01) and e.next_deadline() == pytest.approx(0.11)
        with pytest.raises(ServeError, match="bound"):
            e.submit("a", ROW, waited=0.1)
        now[0] = 0.111
        assert e.reap() == 1 and late.status == "rejected"
    finally:
        e.close()


def test_batches_fill_up_or_wait_out_the_timeout() -> None:
    e = engine(max_batch=3, batch_timeout_ms=200)
    try:
        for model in ("a", "b", "a", "a", "a"):
            e.submit(model, ROW)
        job = e.take(timeout=5)
        assert [r.model for r in job.requests] == ["a"] * 3  # full batch: no waiting
        t0 = time.perf_counter()
        job = e.take(timeout=5)
        # "b" was first in line; its batch cannot fill, so it goes when its timeout is up.
        assert [r.model for r in job.requests] == ["b"]
        job = e.take(timeout=5)
        assert [r.model for r in job.requests] == ["a"]
        assert time.perf_counter() - t0 >= 0.1
    finally:
        e.close()


def test_finish_splits_rows_back_per_request(eng: Engine) -> None:
    two = [{"x": np.zeros((1, 2), np.float32)}] * 2
    r1, r2 = eng.submit("a", two), eng.submit("a", ROW)
    job = eng.take(timeout=1)
    assert job.n_rows == 3
    eng.finish(job, [{"y": np.full((1, 1), i, np.float32)} for i in range(3)])
    assert r1.payload.outputs["y"].ravel().tolist() == [0, 1]
    assert r2.payload.outputs["y"].ravel().tolist() == [2]
    recs = eng.trace()
    assert [r["batch_size"] for r in recs] == [3, 3] and all(r["status"] == "ok" for r in recs)
    assert all(math.isfinite(r["queue_s"]) for r in recs)


def test_mlfq_preempts_only_when_someone_waits() -> None:
    e = engine(scheduler="mlfq")
    try:
        long = e.submit("a", ROW)
        job = e.take(timeout=1)
        assert not e.on_stage(job, 0.05)  # over quantum 0 but alone: demoted in place
        assert long.level == 1 and e.queue_len() == 0
        short = e.submit("a", ROW)
        assert e.on_stage(job, 0.2)  # over quantum 1 and someone waits: stop here
        job.batch, job.stage, job.state = "batch", 2, "state"
        e.requeue(job)
        first = e.take(timeout=1)
        assert first.requests == [short]
        resumed = e.take(timeout=1)
        assert resumed is job and (job.stage, job.state) == (2, "state")
        e.finish(first, [{"y": np.zeros(1)}])
        e.finish(job, [{"y": np.zeros(1)}])
        assert [r["preemptions"] for r in e.trace()] == [0, 1]
    finally:
        e.close()


def test_close_fails_whatever_is_left(eng: Engine) -> None:
    queued = eng.submit("a", ROW)
    running = eng.submit("b", ROW)
    eng.take(timeout=1)  # "a" runs ...
    eng.close()
    assert queued.payload.outcome == "unavailable" and running.payload.outcome == "unavailable"
    assert eng.take(timeout=0.1) is None


# -- Work: the staged execution every executor shares --------------------------------------------
@pytest.mark.parametrize("name", ["mobilenet_v2", "lstm_forecaster", "noop"])
def test_work_equals_infer_and_resumes_after_a_round_trip(name: str) -> None:
    torch.set_num_threads(1)
    model = get_servable(name, variant="tiny")
    model.load()
    rng = np.random.default_rng(0)
    rows = [model.make_input(None, rng) for _ in range(3)]
    want = model.infer(rows)
    work = Work(model, rows=rows)
    assert work.run(3) and _same(work.outputs(3), want)
    # Stop after the first stage, ship the state through the IPC codec, resume elsewhere.
    first = Work(model, rows=rows)
    assert not first.run(3, should_stop=lambda ran: True) or first.n_stages == 1
    arena = Arena.create(1 << 20)
    try:
        batch, stage, state = loads(dumps(first.suspended(), arena, threshold=64), arena)
    finally:
        arena.close()
    second = Work(model, batch=batch, stage=stage, state=state)
    second.n = 3
    second.run(3)
    assert _same(second.outputs(3), want)


def _same(got, want) -> bool:
    for g, w in zip(got, want, strict=True):
        for k in w:
            np.testing.assert_allclose(g[k], w[k], rtol=1e-5, atol=1e-6)
    return True


def test_split_rows_and_outputs() -> None:
    rows = split_rows({"x": np.arange(6).reshape(3, 2)})
    assert [r["x"].shape for r in rows] == [(1, 2)] * 3
    out = split_outputs([{"y": np.array([i])} for i in range(3)], [2, 1])
    assert out[0]["y"].tolist() == [0, 1] and out[1]["y"].tolist() == [2]


def test_ipc_codec_moves_large_tensors_through_the_arena() -> None:
    arena = Arena.create(1 << 20)
    try:
        big = np.arange(100_000, dtype=np.float32)
        with torch.inference_mode():
            t = torch.ones(3, 50_000)
        msg = {"big": big, "small": np.arange(3), "t": t, "tiny": torch.tensor([1, 2]),
               "nested": ("x", [big[:10]]), "huge": np.zeros(2 << 20, np.uint8)}
        data = dumps(msg, arena)
        assert len(data) < (2 << 20) + 100_000  # big and t went through the arena; huge inline
        back = loads(data, arena)
        np.testing.assert_array_equal(back["big"], big)
        assert isinstance(back["t"], torch.Tensor) and torch.equal(back["t"], torch.ones(3, 50_000))
        assert back["tiny"].tolist() == [1, 2] and back["small"].tolist() == [0, 1, 2]
        assert back["huge"].shape == (2 << 20,)
        big[:] = 0  # the receiver holds copies, not views of the arena
        assert back["big"][5] == 5
    finally:
        arena.close()
