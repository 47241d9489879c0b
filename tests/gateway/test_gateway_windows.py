"""Decision windows from the gateway's measurements (the meta-scheduler's reward definition,
on a fake clock) and the one-line switch explanations."""

from __future__ import annotations

import math

import pytest

from servelab.core.config import ServerConfig
from servelab.gateway.explain import explain, what_changed
from servelab.gateway.windows import WindowCollector, WindowStats


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_window_carries_the_meta_reward_and_the_workload_features() -> None:
    clock = Clock()
    c = WindowCollector(clock=clock)
    # Window 0: 10 requests of 1 KB, each answered in 50 ms, except one still in flight.
    for i in range(10):
        clock.t = 100.0 + i * 0.1
        rid = c.arrived("mobilenet_v2" if i % 2 else "distilbert", 1000)
        if i < 9:
            clock.t += 0.05
            c.completed(rid, 200)
    late = rid
    clock.t = 101.0
    w = c.cut(arm=3)
    assert (w.arm, w.arrivals, w.completed, w.errors) == (3, 10, 9, 0)
    assert w.offered == pytest.approx(10.0) and w.throughput == pytest.approx(9.0)
    assert w.p50_s == pytest.approx(0.05) and w.p99_s == pytest.approx(0.05)
    assert w.reward == pytest.approx(9.0 / 1.05)  # throughput / (1 + p99 s)
    assert w.norm == pytest.approx(9.0 / 1.05 / 10.0)  # over the offered rate
    assert w.mix == {"distilbert": 0.5, "mobilenet_v2": 0.5}
    assert (w.context.fast, w.context.slow) == (0.5, 0.5) and w.context.rate == w.offered
    assert w.input_scale == pytest.approx(1.0) and not w.switching
    # Window 1: the pending one finishes with a 503; bodies twice the long-run size.
    rid = c.arrived("mobilenet_v2", 2000)
    clock.t = 101.5
    c.completed(rid, 503)
    c.completed(late, 500)
    clock.t = 102.0
    w2 = c.cut(arm=3, switching=True)
    assert (w2.arrivals, w2.completed, w2.errors) == (1, 2, 1) and w2.switching
    assert w2.throughput == pytest.approx(0.0) and w2.reward == 0.0
    assert w2.input_scale == pytest.approx(2.0)
    assert math.isnan(w2.p50_s) and w2.to_dict()["p50_s"] is None
    idle = c.cut(arm=3)
    assert idle.arrivals == 0 and idle.context.fast == 1.0 and idle.input_scale == 1.0


def _window(mix: dict[str, float], offered: float, p99: float = 0.05) -> WindowStats:
    return WindowStats(index=0, t0=0, t1=1, arm=0, arrivals=int(offered), completed=0,
                       errors=0, offered=offered, throughput=offered, p50_s=0.01, p95_s=p99,
                       p99_s=p99, reward=0, norm=0, cpu=0.5, memory=0.2, mix=mix, classes={},
                       input_scale=1.0)


def test_explanations_name_the_change_and_the_os_reason() -> None:
    threads = ServerConfig(concurrency="threads", workers=2)
    procs = ServerConfig(concurrency="processes", workers=2)
    fast = _window({"mobilenet_v2": 1.0}, 60)
    slow = _window({"distilbert": 0.5, "lstm_forecaster": 0.5}, 4)
    line = explain(procs, threads, fast, slow, cores=2)
    assert line.startswith("DistilBERT share rose to 50%")
    assert "GEMMs release the GIL" in line
    back = explain(threads, procs, slow, fast, cores=2)
    assert back.startswith("MobileNetV2 share rose to 100%")
    assert "threads were GIL-bound at 2 workers" in back and "processes scale" in back
    sched = explain(threads, ServerConfig(concurrency="threads", scheduler="sjf"),
                    fast, _window({"mobilenet_v2": 0.6, "distilbert": 0.4}, 60), cores=2)
    assert "DistilBERT share rose to 40%" in sched and "SJF" in sched
    more = explain(threads, ServerConfig(concurrency="threads", workers=4),
                   _window({"mobilenet_v2": 1.0}, 20), fast, cores=2)
    assert more.startswith("request rate rose from 20 to 60/s") and "4 workers" in more
    assert what_changed(fast, fast) == "60 req/s, 100% MobileNetV2"
