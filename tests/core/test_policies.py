"""Contract suite over every queue policy, plus each policy's own ordering rule."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servelab.core.policies import POLICIES, Fifo, Mlfq, Priority, Sjf, make_policy
from servelab.core.predictor import MeanPredictor, OraclePredictor
from servelab.core.requests import Request


def _make(name: str):
    return make_policy(name, predictor=OraclePredictor())


def _req(i: int, model: str = "m", service: float = 1.0, priority: int | None = None) -> Request:
    return Request(id=i, model=model, service_time=service, priority=priority)


@pytest.mark.parametrize("name", list(POLICIES))
@settings(max_examples=60, deadline=None)
@given(ops=st.lists(st.tuples(st.booleans(), st.floats(0.001, 5.0), st.integers(0, 3)), max_size=80))
def test_nothing_lost_or_duplicated(name, ops):
    """Under any interleaving of pushes and pops every request comes out exactly once."""
    policy = _make(name)
    ids = itertools.count()
    pushed, popped = [], []
    now = 0.0
    for is_push, service, prio in ops:
        now += 0.01
        if is_push or not policy:
            r = _req(next(ids), model=f"m{prio}", service=service, priority=prio)
            pushed.append(r.id)
            policy.push(r, now)
        else:
            popped.append(policy.pop(now).id)
    while policy:
        now += 0.01
        popped.append(policy.pop(now).id)
    assert sorted(popped) == sorted(pushed)
    assert len(set(popped)) == len(popped)
    assert len(policy) == 0


@pytest.mark.parametrize("name", list(POLICIES))
def test_empty_pop_raises(name):
    with pytest.raises(IndexError):
        _make(name).pop()


@pytest.mark.parametrize("name", list(POLICIES))
def test_equal_requests_come_out_fifo(name):
    """With nothing to tell requests apart, every policy is FIFO (the counter tiebreak)."""
    policy = _make(name)
    for i in range(50):
        policy.push(_req(i), now=0.0)
    assert [policy.pop(0.0).id for _ in range(50)] == list(range(50))


@pytest.mark.parametrize("name", list(POLICIES))
def test_pop_batch_takes_same_model_and_keeps_others(name):
    policy = _make(name)
    models = ["a", "b", "a", "a", "b", "a"]
    for i, m in enumerate(models):
        policy.push(_req(i, model=m), 0.0)
    batch = policy.pop_batch(3)
    assert [r.model for r in batch] == ["a", "a", "a"]
    assert [r.id for r in batch] == [0, 2, 3]
    rest = [policy.pop().id for _ in range(len(policy))]
    assert rest == [1, 4, 5]


@pytest.mark.parametrize("name", list(POLICIES))
def test_remove_if(name):
    policy = _make(name)
    for i in range(10):
        policy.push(_req(i), 0.0)
    removed = policy.remove_if(lambda r: r.id % 2 == 0)
    assert sorted(r.id for r in removed) == [0, 2, 4, 6, 8]
    assert [policy.pop().id for _ in range(len(policy))] == [1, 3, 5, 7, 9]


def test_unknown_policy_lists_valid_names():
    with pytest.raises(ValueError, match="fifo.*priority.*sjf.*mlfq"):
        make_policy("lottery")


def test_fifo_order_ignores_size_and_priority():
    policy = Fifo()
    for i, s in enumerate([5.0, 0.1, 3.0]):
        policy.push(_req(i, service=s, priority=2 - i))
    assert [policy.pop().id for _ in range(3)] == [0, 1, 2]


def test_sjf_picks_least_predicted():
    policy = Sjf(OraclePredictor())
    services = [0.5, 0.1, 0.9, 0.1, 0.3]
    for i, s in enumerate(services):
        policy.push(_req(i, service=s))
    assert [policy.pop().id for _ in range(5)] == [1, 3, 4, 0, 2]


def test_sjf_with_mean_predictor_orders_by_model_mean():
    pred = MeanPredictor(priors={"slow": 0.3, "fast": 0.01})
    policy = Sjf(pred)
    for i, m in enumerate(["slow", "fast", "slow", "fast"]):
        policy.push(_req(i, model=m))
    assert [policy.pop().id for _ in range(4)] == [1, 3, 0, 2]


def test_priority_explicit_classes_first_then_expected_service():
    pred = MeanPredictor(priors={"slow": 0.3, "fast": 0.01})
    policy = Priority(pred)
    policy.push(_req(0, model="fast", priority=1))
    policy.push(_req(1, model="slow", priority=0))
    policy.push(_req(2, model="slow"))  # default class 0
    policy.push(_req(3, model="fast"))  # default class 0, shorter expected service
    assert [policy.pop().id for _ in range(4)] == [3, 1, 2, 0]


def test_mlfq_demotes_after_quantum_and_serves_new_arrivals_first():
    policy = Mlfq(quanta=(0.01, 0.05), boost_interval=100.0)
    long = _req(0)
    policy.push(long, 0.0)
    assert policy.pop(0.0) is long
    # It runs one 8 ms stage (within quantum), then another: past 10 ms, so it must yield.
    assert policy.on_run(long, 0.008, 0.008) is False
    assert policy.on_run(long, 0.008, 0.016) is True
    policy.requeue(long, 0.016)
    assert long.level == 1 and long.level_executed == 0.0
    short = _req(1)
    policy.push(short, 0.02)
    assert policy.pop(0.02) is short  # level 0 beats level 1
    assert policy.pop(0.02) is long
    # At the last level there is no quantum: it is never preempted again.
    assert policy.on_run(long, 0.06, 0.1) is True  # level 1 quantum 50 ms exceeded
    policy.requeue(long, 0.1)
    assert long.level == 2
    assert policy.pop(0.1) is long
    assert policy.on_run(long, 10.0, 10.0) is False


def test_mlfq_boost_returns_everyone_to_level_zero_in_arrival_order():
    policy = Mlfq(quanta=(0.01,), boost_interval=1.0)
    demoted = [_req(i) for i in range(3)]
    for r in demoted:
        r.level = 1
        policy.push(r, 0.1)
    fresh = _req(3)
    policy.push(fresh, 0.2)
    assert policy.peek() is fresh
    first = policy.pop(1.5)  # crosses the boost at t = 1.0
    assert policy.boosts == 1
    assert fresh.level == 0 and all(r.level == 0 for r in demoted)
    assert first is demoted[0]  # after the boost, plain arrival order
    assert [policy.pop(1.5).id for _ in range(3)] == [1, 2, 3]


def test_mlfq_rejects_bad_quanta():
    with pytest.raises(ValueError):
        Mlfq(quanta=())
    with pytest.raises(ValueError):
        Mlfq(quanta=(0.01, -1.0))


def test_oracle_needs_service_time():
    with pytest.raises(ValueError, match="service_time"):
        OraclePredictor().predict(Request(id=1, model="m"))


def test_mean_predictor_learns():
    pred = MeanPredictor()
    r = _req(0, model="x")
    assert pred.predict(r) == 0.0
    for v in (0.1, 0.2, 0.3):
        pred.observe(r, v)
    assert pred.predict(r) == pytest.approx(0.2)
