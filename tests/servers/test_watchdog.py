"""The deadlock watchdog: a wait-for cycle found, the stuck requests answered 500 naming the
locks, every thread's stack logged; contention left alone; off with --watchdog-s 0."""

from __future__ import annotations

import functools
import logging
import threading
import time

import numpy as np
import pytest

from servelab.core.config import ServerConfig
from servelab.servers.base import ServeOptions, make_server
from servelab.servers.locks import LockRegistry, TrackedLock
from tests.servers.helpers import Background, infer_body, post


def _order(srv, order: int):  # type: ignore[no-untyped-def]
    body, headers = infer_body({"order": np.array([[float(order)]], np.float32)})
    return post(srv, "deadlock", body, headers)


def _server(watchdog_s: float, models: tuple[str, ...] = ("deadlock",)):  # type: ignore[no-untyped-def]
    cfg = ServerConfig(concurrency="threads", workers=2, models=models)
    opts = ServeOptions(port=0, variant="tiny", drain_timeout_s=0.5, watchdog_s=watchdog_s)
    return make_server(cfg, opts).start()


def test_registry_finds_a_cycle_and_tells_contention_apart() -> None:
    reg = LockRegistry()
    a, b = TrackedLock("A", reg), TrackedLock("B", reg)
    go = threading.Barrier(2)

    def take(first: TrackedLock, second: TrackedLock) -> None:
        with first:
            go.wait()
            second.acquire(timeout=0.3) and second.release()

    ts = [threading.Thread(target=take, args=p, daemon=True) for p in ((a, b), (b, a))]
    for t in ts:
        t.start()
    deadline = time.monotonic() + 2
    while len(reg.waits()) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    chain = reg.chain(ts[0].ident or 0)
    assert chain is not None and chain.kind == "deadlock"
    assert {w.lock for w in chain.waits} == {"A", "B"}
    for t in ts:
        t.join()
    assert reg.waits() == [] and not a.locked() and not b.locked()
    # One holder running, one waiter: contention, never a deadlock.
    with a:
        waiter = threading.Thread(target=lambda: a.acquire(timeout=0.3) and a.release())
        waiter.start()
        time.sleep(0.05)
        c = reg.chain(waiter.ident or 0)
        assert c is not None and c.kind == "contention"
    waiter.join()


def test_deadlock_is_answered_500_naming_the_locks_and_logs_stacks(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="servelab.servers.watchdog")
    srv = _server(watchdog_s=0.3)
    try:
        t0 = time.perf_counter()
        reqs = [Background(functools.partial(_order, srv, o)) for o in (0, 1)]
        replies = [r.get(10) for r in reqs]
        took = time.perf_counter() - t0
        assert [r.status_code for r in replies] == [500, 500]
        for r in replies:
            err = r.json()["error"]
            assert "deadlock" in err and "deadlock-A" in err and "deadlock-B" in err
        assert took < 3.0
        text = caplog.text
        assert "All thread stacks" in text and "infer-0" in text and "infer-1" in text
        assert "lock.acquire" in text or "second.acquire" in text  # the stuck frames
        assert srv.watchdog is not None and srv.watchdog.answered == 2
        assert 'servelab_watchdog_stuck_requests_total{kind="deadlock"} 2.0' in \
            srv.metrics.exposition().decode()
    finally:
        srv.stop()


def test_one_request_alone_runs_and_watchdog_off_means_none() -> None:
    srv = _server(watchdog_s=0)
    try:
        assert srv.watchdog is None
        r = _order(srv, 1)
        assert r.status_code == 200
    finally:
        srv.stop()
    with pytest.raises(ValueError, match="watchdog_s"):
        ServeOptions(watchdog_s=-1)
