"""In-place scheduler changes: the scheduling core moves queued work into a new policy, and a
live server switches its policy through ``POST /servelab/config`` without dropping anything."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np

from servelab.core.config import ServerConfig
from servelab.core.policies import make_policy
from servelab.core.predictor import MeanPredictor
from servelab.core.requests import Request
from servelab.core.scheduling import Batch, Scheduler
from servelab.servers.base import ServeOptions, make_server
from servelab.servers.oip import encode_request


def _req(i: int, model: str, priority: int, now: float) -> Request:
    return Request(id=i, model=model, input_size=1, arrival=now, priority=priority)


def test_set_policy_moves_every_queued_request_in_arrival_order() -> None:
    sched: Scheduler[Batch] = Scheduler(make_policy("priority", predictor=MeanPredictor()), Batch)
    reqs = [_req(i, "m", priority=3 - i % 4, now=float(i)) for i in range(8)]
    for r in reqs:
        assert sched.admit(r, r.arrival) is None
    running = sched.take(8.0)
    assert isinstance(running, Batch)
    sched.set_policy(make_policy("fifo"), 9.0)
    assert sched.queued == 7 and sched.inflight == 8
    order = []
    while True:
        b = sched.take(10.0)
        if not isinstance(b, Batch):
            break
        order.append(b.lead.id)
        sched.finish(b, 11.0, 0.1)
    assert order == sorted(r.id for r in reqs if r is not running.lead)
    sched.finish(running, 12.0, 0.1)
    assert sched.inflight == 0


class SleepClients:
    """``n`` clients, each sending one ``seconds`` sleep request to a one-worker thread server;
    ``queued(k)`` waits until ``k`` of them wait in its queue."""

    def __init__(self, srv, n: int, seconds: float) -> None:
        self.srv, self.statuses = srv, []
        body, headers = encode_request({"seconds": np.array([[seconds]], np.float32)})

        def send() -> None:
            r = httpx.post(f"{srv.url}/v2/models/sleep/infer", content=body, headers=headers,
                           timeout=30)
            self.statuses.append(r.status_code)

        self.threads = [threading.Thread(target=send) for _ in range(n)]
        for t in self.threads:
            t.start()

    def queued(self, k: int) -> None:
        end = time.monotonic() + 10
        while self.srv.engine.queue_len() < k and time.monotonic() < end:
            time.sleep(0.005)
        assert self.srv.engine.queue_len() >= k, "requests should be queued behind one worker"

    def join(self) -> list[int]:
        for t in self.threads:
            t.join(30)
        return self.statuses


def _one_worker_server():
    cfg = ServerConfig(concurrency="threads", workers=1, models=("sleep",))
    return make_server(cfg, ServeOptions(port=0, variant="tiny")).start()


def test_live_server_switches_scheduler_in_place_without_dropping_requests() -> None:
    srv = _one_worker_server()
    try:
        clients = SleepClients(srv, 6, 0.05)
        clients.queued(3)
        r = httpx.post(f"{srv.url}/servelab/config", json={"scheduler": "sjf"}, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["config"]["scheduler"] == "sjf"
        assert clients.join() == [200] * 6
        stats = httpx.get(f"{srv.url}/servelab/stats", timeout=10).json()
        assert stats["config"]["scheduler"] == "sjf"
        bad = httpx.post(f"{srv.url}/servelab/config", json={"max_batch": 4}, timeout=10)
        assert bad.status_code == 400 and "new server" in bad.json()["error"]
        unknown = httpx.post(f"{srv.url}/servelab/config", json={"scheduler": "lifo"}, timeout=10)
        assert unknown.status_code == 400 and "fifo" in unknown.json()["error"]
    finally:
        srv.stop()


def _alive(url: str) -> int:
    workers = httpx.get(f"{url}/servelab/stats", timeout=10).json()["workers"]
    return sum(1 for w in workers if w["alive"])


def test_live_thread_pool_grows_and_shrinks_in_place() -> None:
    """1 -> 3 inference threads while requests queue (they then run three at a time), and
    back to 1 (the extra threads finish their batch and leave); nothing is dropped."""
    srv = _one_worker_server()
    body, headers = encode_request({"seconds": np.array([[0.3]], np.float32)})
    try:
        clients = SleepClients(srv, 7, 0.3)
        clients.queued(6)
        r = httpx.post(f"{srv.url}/servelab/config", json={"workers": 3}, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["config"]["workers"] == 3 and _alive(srv.url) == 3
        assert clients.join() == [200] * 7
        recs = srv.engine.trace()
        assert len({rec["worker"] for rec in recs}) == 3
        # After the resize three sleeps ran at once (from the trace's intervals, not timing).
        ends = [(r["start"], 1) for r in recs] + [(r["end"], -1) for r in recs]
        running = np.cumsum([d for _, d in sorted(ends, key=lambda e: (e[0], e[1]))])
        assert running.max() == 3  # one thread before the resize: only it could overlap them
        r = httpx.post(f"{srv.url}/servelab/config", json={"workers": 1}, timeout=10)
        assert r.status_code == 200 and r.json()["config"]["workers"] == 1
        end = time.monotonic() + 5
        while _alive(srv.url) > 1 and time.monotonic() < end:
            time.sleep(0.01)
        assert _alive(srv.url) == 1
        ok = httpx.post(f"{srv.url}/v2/models/sleep/infer", content=body, headers=headers,
                        timeout=30)
        assert ok.status_code == 200
        bad = httpx.post(f"{srv.url}/servelab/config", json={"workers": 0}, timeout=10)
        assert bad.status_code == 400 and "1..256" in bad.json()["error"]
    finally:
        srv.stop()


def test_a_process_pool_refuses_a_live_resize() -> None:
    import json

    srv = make_server(ServerConfig(concurrency="processes", workers=1, models=("sleep",)),
                      ServeOptions(port=0, variant="tiny"))  # not started: the API alone
    reply = srv.api.configure(json.dumps({"workers": 2}).encode())
    assert reply.status == 400 and b"new server" in reply.body
