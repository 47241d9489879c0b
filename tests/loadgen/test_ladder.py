"""The one capacity ladder (loadgen/ladder.py): retries, capped bisection, the best passing step,
and the SLO rule — the options bench serve and sched-study use (validate's and crosscheck's
defaults are tested in tests/analysis/test_validate.py)."""

from __future__ import annotations

import math

import pytest

from servelab.loadgen.ladder import Step, climb, failing, saturated, slow


def _server(capacity: float, hiccups: set[int] = frozenset()):
    """Completes min(rate, capacity); call number k in ``hiccups`` completes half (a noisy step)."""
    calls: list[float] = []

    def measure(rate: float) -> Step:
        k = len(calls)
        calls.append(rate)
        done = min(rate, capacity) * (0.5 if k in hiccups else 1.0)
        return Step(rate=rate, offered=rate, throughput=done, p99=0.01 if done >= rate else 1.0)

    return measure, calls


def test_a_failed_step_is_measured_again_before_it_counts():
    measure, calls = _server(100.0, hiccups={1})
    lad = climb(measure, 50.0, up=1.3, rules=(saturated(0.99),), retry=1, bisect=0, max_steps=10)
    assert calls[1] == calls[2] == pytest.approx(65.0)  # the hiccup was retried, and passed
    assert lad.best is not None and lad.best.rate == pytest.approx(50 * 1.3**2)
    assert lad.lowest_failing == pytest.approx(50 * 1.3**3) and lad.lowest_failing > 100
    measure, calls = _server(100.0, hiccups={1})
    lad = climb(measure, 50.0, up=1.3, rules=(saturated(0.99),), retry=0, bisect=0)
    assert calls == [50.0, 65.0] and lad.best.rate == 50.0  # without retry the hiccup counts


def test_bisection_is_capped_and_ends_between_a_pass_and_a_fail():
    measure, calls = _server(100.0)
    lad = climb(measure, 40.0, up=2.0, rules=(saturated(0.9),), tight=1.01, heavy=0.0,
                bisect=2, max_steps=20)
    assert calls[:3] == [40.0, 80.0, 160.0] and len(calls) == 5  # two bisection steps
    assert lad.best.rate <= 100 / 0.9 < lad.lowest_failing
    assert lad.capacity == pytest.approx(100.0)
    measure, calls = _server(100.0)
    climb(measure, 40.0, up=2.0, rules=(saturated(0.9),), bisect=0)
    assert calls == [40.0, 80.0, 160.0]  # bisect=0: stop at the first failing step


def test_slo_and_failure_rules():
    assert slow(0.1)(Step(1.0, 1.0, 1.0, p99=0.2)) and not slow(0.1)(Step(1.0, 1.0, 1.0, p99=0.05))
    assert slow(0.1)(Step(1.0, 1.0, 0.0))  # nothing answered: no p99, a failing step
    assert failing(0.01)(Step(1.0, 1.0, 1.0, failed=0.02)) and not failing()(Step(1.0, 1.0, 1.0))
    assert math.isnan(Step(1.0, 1.0, 1.0).p99)
    with pytest.raises(ValueError):
        climb(lambda r: Step(r, r, r), 1.0, retry=-1)
