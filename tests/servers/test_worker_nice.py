"""``--worker-nice``: inference workers run below the front end (threads and processes)."""

from __future__ import annotations

import os
import threading

import pytest

from servelab.core.config import ServerConfig
from servelab.servers.base import ServeOptions, make_server

from .helpers import wait_until


def _start(concurrency: str, nice: int):
    cfg = ServerConfig(concurrency=concurrency, workers=2, models=("sleep",))
    return make_server(cfg, ServeOptions(port=0, variant="tiny", worker_nice=nice)).start()


def test_inference_threads_are_niced_and_the_front_end_is_not() -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)
    srv = _start("threads", 5)
    try:
        infer = srv.executor.threads  # (other tests' servers may have infer-* threads too)
        assert len(infer) == 2 and all(t.native_id for t in infer)
        wait_until(lambda: all(os.getpriority(os.PRIO_PROCESS, t.native_id) == min(base + 5, 19)
                               for t in infer), what="inference threads niced")
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base
    finally:
        srv.stop()


def test_worker_processes_are_niced() -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)
    srv = _start("processes", 3)
    try:
        pids = [s.pid for s in srv.executor.slots]
        assert len(pids) == 2 and all(p > 0 for p in pids)
        assert [os.getpriority(os.PRIO_PROCESS, p) for p in pids] == [min(base + 3, 19)] * 2
        assert os.getpriority(os.PRIO_PROCESS, 0) == base
    finally:
        srv.stop()


def test_worker_nice_is_bounded() -> None:
    with pytest.raises(ValueError, match="worker_nice"):
        ServeOptions(worker_nice=20)
