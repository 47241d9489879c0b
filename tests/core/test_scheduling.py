"""The scheduling core on its own: each rule on a case small enough to know the answer, and a
randomized run checked against plain bookkeeping (every request ends exactly once; the
in-flight count is what is queued plus what runs)."""

from __future__ import annotations

import math
import random

import pytest

from servelab.core.policies import Fifo, Mlfq, make_policy
from servelab.core.predictor import MeanPredictor
from servelab.core.requests import Request
from servelab.core.scheduling import Batch, Scheduler


def sched(policy=None, **kw) -> Scheduler[Batch]:
    return Scheduler(policy if policy is not None else Fifo(), Batch, **kw)


def req(i: int, model: str = "a", deadline: float | None = None, **kw) -> Request:
    return Request(id=i, model=model, deadline=deadline, **kw)


def ids(batch) -> list[int]:
    return [r.id for r in batch.requests]


# -- admission -------------------------------------------------------------------------------------
def test_admission_refuses_full_draining_and_past_deadline():
    s = sched(capacity=2)
    assert s.admit(req(0), 0.0) is None and s.admit(req(1), 0.1) is None
    full = req(2)
    assert s.admit(full, 0.2) == "full"
    assert (full.status, full.end, full.queue_len_at_arrival) == ("rejected", 0.2, 2)
    assert math.isnan(full.start) and s.queued == 2 and s.inflight == 2
    late = req(3, deadline=0.3)
    s.take(0.3)  # frees a place
    assert s.admit(late, 0.3) == "deadline" and late.status == "timeout"
    s.stop_intake()
    drained = req(4)
    assert s.admit(drained, 0.4) == "draining" and drained.status == "rejected"
    assert s.inflight == 2


def test_a_request_that_waited_the_bound_is_shed_at_that_instant():
    s = sched(max_wait=0.1)
    s.admit(req(0), 0.0)
    s.admit(req(1, deadline=0.05, arrival=0.01), 0.01)  # its deadline comes first: a timeout
    s.admit(req(2, arrival=0.02), 0.02)
    assert s.next_deadline() == pytest.approx(0.05)
    got = s.expire(0.06)
    assert [(r.id, r.status, r.end) for r, _ in got] == [(1, "timeout", 0.05)]
    assert s.next_deadline() == pytest.approx(0.1)  # request 0's bound
    assert ids(s.take(0.08)) == [0]  # it started in time: never shed
    got = s.expire(0.5)
    assert [(r.id, r.status) for r, _ in got] == [(2, "rejected")]
    assert got[0][0].end == pytest.approx(0.12) and s.inflight == 1 and s.queued == 0


def test_admission_refuses_what_the_queue_would_not_start_within_the_bound():
    """A newcomer's expected wait is the queue's length times the time per entry the queue has
    drained at (each dispatch: the time since the previous one, or since the queue filled)."""
    s = sched(max_wait=1.0)
    for i in range(4):
        assert s.admit(req(i), 0.0) is None
    assert s.expected_wait(0.4) == 0.0  # nothing dispatched yet: no rate, admit
    s.take(0.5)  # 0.5 s for one entry; 3 queued
    assert s.expected_wait(0.5) == pytest.approx(3 * 0.5)
    refused = req(4, arrival=0.5)
    assert s.refusal(0.5) == "backlog" and s.admit(refused, 0.5) == "backlog"
    assert refused.status == "rejected" and s.queued == 3
    s.take(0.6)  # 0.1 s for the next: smoothed 0.5 + 0.2 * (0.1 - 0.5) = 0.42 s per entry
    assert s.expected_wait(0.6) == pytest.approx(2 * 0.42)
    assert s.admit(req(5, arrival=0.6), 0.6) is None
    assert s.admit(req(6, arrival=0.6), 0.6) == "backlog"
    while s.queued:
        s.take(0.7)
    s.admit(req(7, arrival=5.0), 5.0)  # the queue was empty: its dispatch counts from 5.0
    s.take(5.01)
    assert s._drain < 0.42


def test_time_spent_before_admission_counts_in_the_expected_wait_until_it_goes_stale():
    """A front end's queue: requests reaching admission 0.3 s after they arrived make a
    newcomer's expected wait 0.3 s more, until none has come for a bound's time."""
    s = sched(max_wait=0.5)
    for i in range(20):
        s.admit(req(i, arrival=i * 0.01), i * 0.01 + 0.3)
        s.take(i * 0.01 + 0.3)  # no queue: only the front end's time is left
    assert s.expected_wait(0.5) == pytest.approx(0.3, rel=0.02)
    assert s.refusal(0.5) is None and s.expected_wait(1.2) == 0.0  # stale
    s = sched(max_wait=0.25)  # a tighter bound: the front end alone is over it
    for i in range(20):
        s.admit(req(i, arrival=i * 0.01), i * 0.01 + 0.3)
    assert s.refusal(0.5) == "backlog"


def test_a_request_already_as_old_as_the_bound_is_refused_at_admission():
    """Time before admission counts (a front end's): ``arrival``, not ``enqueue``."""
    s = sched(max_wait=0.1)
    late = req(0, arrival=0.0)
    assert s.admit(late, 0.1) == "backlog" and late.status == "rejected"
    early = req(1, arrival=0.05)
    assert s.admit(early, 0.1) is None and s.next_deadline() == pytest.approx(0.15)


def test_a_full_batch_counts_as_the_entries_it_drains():
    s = sched(max_wait=0.1, max_batch=16)
    for i in range(40):
        s.admit(req(i), 0.0)
    s.take(0.05)  # 16 entries in 50 ms
    assert s.expected_wait(0.05) == pytest.approx(24 * 0.05 / 16)
    assert s.refusal(0.05) is None


def test_time_bounded_admission_keeps_every_started_request_within_the_bound():
    """Randomized 3x overload, one worker: no request starts after waiting longer than the
    bound, every request ends exactly once, and the server keeps busy (no request is refused
    while the queue is empty)."""
    rng = random.Random(3)
    s = sched(max_wait=0.2, capacity=10_000)
    t, busy_until, n, started = 0.0, 0.0, 0, []
    ended: dict[int, str] = {}
    while t < 60.0:
        t += rng.expovariate(30.0)  # 30/s offered to a 10/s server
        for r, _ in s.expire(t):
            ended[r.id] = r.status
        while busy_until <= t:
            b = s.take(busy_until)
            if b is None:
                busy_until = t
                break
            started += b.requests
            for r in s.finish(b, busy_until + 0.1, 0.1):
                ended[r.id] = r.status
            busy_until += 0.1
        r = req(n, arrival=t)
        n += 1
        empty = s.queued == 0
        if s.admit(r, t) is not None:
            assert not empty
            ended[r.id] = r.status
    assert all(r.start - r.enqueue <= 0.2 + 1e-9 for r in started)
    assert len(started) > 0.9 * 10 * 60  # the worker stayed busy: goodput near capacity
    assert set(ended.values()) <= {"ok", "rejected"}


def test_without_a_bound_only_capacity_refuses():
    s = sched(capacity=3)
    for i in range(3):
        assert s.admit(req(i), 0.0) is None
    assert s.refusal(100.0) == "full" and s.oldest_wait(100.0) == 0.0
    s.take(100.0)
    assert s.refusal(100.0) is None


# -- batches ---------------------------------------------------------------------------------------
def test_batches_are_one_model_in_policy_order_and_others_keep_their_places():
    s = sched(max_batch=3)
    for i, m in enumerate("abaaa"):
        s.admit(req(i, m), 0.0)
    first = s.take(0.0, worker=1)
    assert ids(first) == [0, 2, 3] and first.worker == 1
    assert all(r.start == 0.0 and r.worker == 1 for r in first.requests)
    assert ids(s.take(0.0)) == [1]
    assert ids(s.take(0.0)) == [4]
    assert s.take(0.0) is None and s.running.keys() == {0, 1, 2}


def test_batch_timeout_says_when_to_ask_again():
    s = sched(max_batch=3, batch_timeout=0.2)
    s.admit(req(0, "b"), 0.0)
    s.admit(req(1, "a"), 0.05)
    assert s.take(0.1) == pytest.approx(0.2)  # b's batch cannot fill: wait for its timeout
    assert ids(s.take(0.2)) == [0]
    for i in (2, 3):
        s.admit(req(i, "a"), 0.21)
    assert ids(s.take(0.21)) == [1, 2, 3]  # full: no waiting
    # A queued deadline before the head's timeout is the next time to look.
    s.admit(req(4, "a"), 1.0)
    s.admit(req(5, "b", deadline=1.1), 1.0)
    assert s.take(1.0) == pytest.approx(1.1)
    # Draining: batches no longer wait to fill.
    s.stop_intake()
    assert ids(s.take(1.05)) == [4]


# -- preemption ------------------------------------------------------------------------------------
def test_the_lead_decides_preemption_and_every_member_is_accounted():
    s = sched(Mlfq(quanta=(0.1, 1.0)), max_batch=2)
    s.admit(req(0), 0.0)
    s.admit(req(1), 0.0)
    batch = s.take(0.0)
    batch.requests[1].level_executed = 0.5  # a member over its quantum does not decide
    s.admit(req(2), 0.01)
    assert not s.on_stage(batch, 0.05, 0.05)
    assert [r.executed for r in batch.requests] == [0.05, 0.05]
    assert s.on_stage(batch, 0.06, 0.11)  # the lead's quantum is used up, someone waits
    s.requeue(batch, 0.11)
    assert s.queued == 2 and batch.preemptions == 1
    assert [r.level for r in batch.requests] == [1, 1]  # members follow the lead's level
    fresh = s.take(0.11)
    assert ids(fresh) == [2]  # level 0 first; the resumed batch never merges with it
    again = s.take(0.12)
    assert again is batch and ids(again) == [0, 1] and s.queued == 0
    assert [r.start for r in batch.requests] == [0.0, 0.0]  # starts are first dispatches


def test_nothing_else_waits_so_the_batch_is_demoted_in_place():
    s = sched(Mlfq(quanta=(0.1, 1.0)))
    s.admit(req(0), 0.0)
    batch = s.take(0.0)
    assert not s.on_stage(batch, 0.2, 0.2)
    assert batch.lead.level == 1 and s.queued == 0 and batch.id in s.running


def test_a_resumed_batch_is_one_entry_never_merged():
    s = sched(Mlfq(quanta=(0.1,)), max_batch=4)
    for i in range(2):
        s.admit(req(i), 0.0)
    batch = s.take(0.0)
    for i in (2, 3):
        s.admit(req(i), 0.05)
    assert s.on_stage(batch, 0.2, 0.2)
    s.requeue(batch, 0.2)
    assert ids(s.take(0.2)) == [2, 3]
    s.admit(req(4), 0.3)  # level 0, ahead of the demoted batch
    assert ids(s.take(0.3)) == [4]
    assert s.take(0.3) is batch


# -- deadlines -------------------------------------------------------------------------------------
def test_queued_requests_expire_at_their_deadline_however_late_the_driver_looks():
    s = sched()
    s.admit(req(0, deadline=0.5), 0.0)
    s.admit(req(1, deadline=0.3), 0.0)
    s.admit(req(2), 0.0)
    running = s.take(0.0)  # request 0 starts: it is never cut short
    assert s.next_deadline() == 0.3
    assert s.expire(0.2) == []
    gone = s.expire(0.9)  # a lazy driver
    assert [(r.id, b, r.status, r.end) for r, b in gone] == [(1, None, "timeout", 0.3)]
    assert s.next_deadline() is None and s.inflight == 2 and running.lead.status == ""


def test_take_never_dispatches_a_request_whose_deadline_has_come():
    s = sched()
    s.admit(req(0, deadline=1.0), 0.0)
    assert s.take(1.0) is None  # exactly at its deadline: expired, not started
    (r, _), = s.expire(1.0)
    assert r.id == 0 and r.end == 1.0 and math.isnan(r.start)


def test_a_preempted_batch_expires_when_all_its_deadlines_have_passed():
    s = sched(Mlfq(quanta=(0.1,)), max_batch=2)
    s.admit(req(0, deadline=1.0), 0.0)
    s.admit(req(1, deadline=2.0), 0.0)
    batch = s.take(0.0)
    s.admit(req(2), 0.1)
    assert s.on_stage(batch, 0.2, 0.2)
    s.requeue(batch, 0.2)
    s.take(0.2)  # request 2 runs
    assert s.expire(1.5) == []  # one member still has time
    gone = s.expire(2.5)
    assert [(r.id, b is batch, r.end) for r, b in gone] == [(0, True, 2.0), (1, True, 2.0)]
    # Preempted after every deadline passed: it expires at the boundary.
    s.admit(req(3, deadline=3.0), 2.6)
    late = s.take(2.6)
    s.admit(req(4), 2.7)
    assert s.on_stage(late, 0.5, 3.1)
    s.requeue(late, 3.1)
    assert [(r.id, r.end) for r, _ in s.expire(3.1)] == [(3, 3.1)]
    # A member without a deadline keeps the batch alive.
    assert Batch(9, "a", [req(5, deadline=1.0), req(6)]).deadline is None


# -- completion ------------------------------------------------------------------------------------
def test_finish_feeds_every_member_the_batch_compute_time():
    pred = MeanPredictor()
    s = sched(make_policy("sjf", predictor=pred), predictor=pred, max_batch=2)
    s.admit(req(0), 0.0)
    s.admit(req(1), 0.0)
    batch = s.take(0.0)
    assert s.finish(batch, 0.5, compute=0.4) == batch.requests
    assert [(r.status, r.end) for r in batch.requests] == [("ok", 0.5)] * 2
    assert pred.means() == {"a": pytest.approx(0.4)} and pred._n["a"] == 2
    assert s.finish(batch, 0.6, 0.1) == [] and s.inflight == 0


def test_split_fail_and_close():
    s = sched(max_batch=3)
    for i in range(3):
        s.admit(req(i), 0.0)
    parts = s.split(s.take(0.0, worker=2))
    assert [ids(p) for p in parts] == [[0], [1], [2]] and {p.worker for p in parts} == {2}
    assert s.fail(parts[0], 0.1)[0].status == "error"
    s.admit(req(3), 0.2)
    queued, running = s.close(0.3)
    assert [(r.id, r.status) for r, _ in queued] == [(3, "rejected")]
    assert [(r.id, r.status) for r, _ in running] == [(1, "error"), (2, "error")]
    assert s.inflight == 0 and s.take(0.4) is None
    assert s.finish(parts[1], 0.5, 0.1) == []
    assert s.admit(req(4), 0.5) == "draining"


# -- a randomized run against plain bookkeeping -----------------------------------------------------
@pytest.mark.parametrize("name", ["fifo", "sjf", "priority", "mlfq"])
def test_random_runs_end_every_request_once_and_count_in_flight(name):
    rnd = random.Random(7)
    pred = MeanPredictor({"a": 0.01, "b": 0.05})
    kw = {"quanta": (0.01, 0.03), "boost_interval": 0.2} if name == "mlfq" else {}
    s = sched(make_policy(name, predictor=pred, **kw), predictor=pred, max_batch=3,
              batch_timeout=0.004, capacity=8)
    ended: dict[int, int] = {}
    running: list[tuple[Batch, int]] = []
    now, reqs = 0.0, []

    def end(rs):
        for r in rs:
            ended[r.id] = ended.get(r.id, 0) + 1

    for i in range(3000):
        now += rnd.expovariate(150.0)
        r = req(i, rnd.choice("ab"), deadline=now + rnd.choice([0.02, 0.1, math.inf]),
                priority=rnd.choice([None, 0, 1]))
        if r.deadline == math.inf:
            r.deadline = None
        reqs.append(r)
        if s.admit(r, now) is not None:
            end([r])
        for _ in range(rnd.randint(0, 3)):
            if running and rnd.random() < 0.6:
                batch, left = running.pop(rnd.randrange(len(running)))
                if left > 1 and s.on_stage(batch, rnd.uniform(0.001, 0.02), now):
                    s.requeue(batch, now)
                elif left > 1:
                    running.append((batch, left - 1))
                else:
                    end(s.finish(batch, now, 0.01))
            if len(running) < 2:
                got = s.take(now, worker=len(running))
                if isinstance(got, Batch):
                    running.append((got, rnd.randint(1, 3)))
        end(r for r, _ in s.expire(now))
        queued = sum(len(s._resumed[id(q)].requests) if id(q) in s._resumed else 1
                     for q in s.policy)
        assert s.inflight == queued + sum(len(b.requests) for b in s.running.values())
        assert {b.id for b, _ in running} == set(s.running)
    q, r_ = s.close(now)
    end(r for r, _ in q)
    end(r for r, _ in r_)
    end(r for r, _ in s.expire(now))
    assert all(ended.get(r.id) == 1 for r in reqs), "a request ended twice or never"
    assert s.inflight == 0
    ok = [r for r in reqs if r.status == "ok"]
    assert ok and all(r.enqueue <= r.start < r.end or r.start == r.end for r in ok)
    started = [r for r in reqs if r.start == r.start and r.deadline is not None]
    assert all(r.start < r.deadline for r in started)
