"""Replay with scripted policies: rewards, switch accounting, adaptation time, scores."""

from __future__ import annotations

import numpy as np
import pytest

from servelab.core.bandits.base import Context
from servelab.meta.arms import arms_from_spec
from servelab.meta.metrics import adaptation_times, best_static_arm, oracle_arms, score
from servelab.meta.replay import RoundRobin, Scripted, SwitchCosts, replay
from servelab.meta.windows import RewardTable, normalise

ARMS = arms_from_spec([
    {"concurrency": "threads", "workers": 2},
    {"concurrency": "threads", "workers": 2, "scheduler": "sjf"},  # in place from arm 0
    {"concurrency": "processes", "workers": 2},  # a new backend
    {"concurrency": "threads", "workers": 2, "max_batch": 4},  # batching: another backend
])
COSTS = SwitchCosts(start_s={"threads": 1.0, "processes": 2.5}, penalty=0.2, max_warm=1)


def make_table(reward: np.ndarray, phase_starts: tuple[float, ...]) -> RewardTable:
    n_a, n_w = reward.shape
    offered = np.full(n_w, 10.0)
    mid = np.arange(n_w) + 0.5
    phase = np.searchsorted(np.asarray(phase_starts), mid, side="right") - 1
    z = np.zeros((n_a, n_w))
    return RewardTable(
        workload="hand", arms=ARMS, window_s=1.0, reward_kind="reward", reward=reward,
        norm=normalise(reward, offered[None, :], 1.0), throughput=z, p95=z, p99=z, cpu=z,
        memory=np.zeros(n_a), offered=offered, mix=np.tile([1.0, 0.0, 0.0], (n_w, 1)),
        input_scale=np.ones(n_w), phase=phase, phase_starts=phase_starts, meta={},
    )


def two_phases() -> RewardTable:
    r = np.empty((4, 12))
    r[:, :6] = np.array([[10.0], [9.0], [4.0], [1.0]])  # phase 0: arm 0 best
    r[:, 6:] = np.array([[5.0], [5.0], [10.0], [1.0]])  # phase 1: arm 2 best
    return make_table(r, (0.0, 6.0))


def test_free_switching_earns_the_table() -> None:
    t = two_phases()
    seq = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]
    rep = replay(Scripted(seq), t, SwitchCosts.free())
    np.testing.assert_allclose(rep.reward, t.reward[seq, np.arange(12)])
    assert rep.switches == 11 and rep.switching_s == 0.0


def test_switch_costs_in_place_and_backend() -> None:
    t = two_phases()
    seq = [0, 0, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2]
    rep = replay(Scripted(seq), t, COSTS)
    f = rep.frame
    assert list(f["served"]) == [0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2]
    assert f["reward"][2] == 9.0  # scheduler + thread pool: in place, no cost
    assert f["reward"][4] == pytest.approx(0.8 * 9.0)  # the old arm serves, penalised
    assert f["reward"][5] == pytest.approx(0.8 * 9.0)
    assert f["reward"][6] == pytest.approx(0.5 * 0.8 * 5.0 + 0.5 * 10.0)  # half a window left
    assert f["reward"][7] == 10.0
    assert list(f["chosen"][4:7]) == [2, -1, -1]  # committed: the policy is not asked again
    assert rep.switches == 2 and rep.backend_switches == 1
    assert rep.switching_s == pytest.approx(2.5)


def test_adaptation_time_and_scores() -> None:
    t = two_phases()
    assert list(oracle_arms(t)) == [0, 2]
    assert best_static_arm(t) == 0  # 7.5 mean vs 7.0, 7.0, 1.0
    # on arm 0 all along, then to arm 2 at the shift: two windows and a half of switching
    seq = [0] * 6 + [2] * 6
    rep = replay(Scripted(seq), t, COSTS)
    # phase 1 windows: 0.8*5, 0.8*5, 0.5*0.8*5+0.5*10 = 7 (< 9.5), then 10: adapted at 3 s
    assert adaptation_times(rep, t, COSTS) == [0.0, 3.0]
    s = score(rep, t, COSTS)
    expected = (6 * 10 + 4 + 4 + 7 + 3 * 10) / (12 * 10)
    assert s["oracle_share"] == pytest.approx(expected)
    assert s["adaptation_s"] == [3.0] and s["adapted_all"]
    assert s["regret"] == pytest.approx(120 - (60 + 4 + 4 + 7 + 30))
    # never reaching arm 2: not adapted
    rep = replay(Scripted([0]), t, COSTS)
    assert adaptation_times(rep, t, COSTS) == [0.0, None]
    # arm 1 is within 5% of nothing in phase 0 (9 < 9.5): phase 0 adapts only once on arm 0
    rep = replay(Scripted([1, 1, 0]), t, COSTS)
    assert adaptation_times(rep, t, COSTS)[0] == 2.0


class Learner:
    """A stub policy: plays arm 2 once it has seen a reward above 0.9 (normalised)."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, float, Context | None]] = []

    def select(self, context: Context | None = None) -> int:
        return 2 if any(r > 0.9 for _, r, _ in self.seen) else 0

    def update(self, arm: int, reward: float, context: Context | None = None) -> None:
        self.seen.append((arm, reward, context))


def test_policy_learns_what_served_and_full_information() -> None:
    t = two_phases()
    stub = Learner()
    replay(stub, t, SwitchCosts.free())
    assert [a for a, _, _ in stub.seen[:2]] == [0, 2]  # 10/10 = 1.0 seen in window 0
    assert stub.seen[0][2] == Context()  # nothing seen before the first window
    assert stub.seen[1][2].rate == 10.0
    full = Learner()
    replay(full, t, SwitchCosts.free(), full_information=True)
    assert len(full.seen) == 4 * 12  # every arm, every window


def test_round_robin_under_costs() -> None:
    t = two_phases()
    rep = replay(RoundRobin(4), t, COSTS)
    assert rep.backend_switches >= 1 and rep.switching_s > 0


def test_warm_backends_switch_back_for_free() -> None:
    t = two_phases()
    seq = [0, 0, 3, 3, 3, 0, 0, 0, 0, 0, 0, 0]  # to another thread server and back
    cold = replay(Scripted(seq), t, COSTS)  # max_warm 1: both moves start a backend
    assert cold.backend_switches == 2 and cold.switching_s == pytest.approx(2.0)
    warm = replay(Scripted(seq), t, SwitchCosts(start_s=COSTS.start_s, penalty=0.2, max_warm=2))
    assert warm.backend_switches == 2 and warm.switching_s == pytest.approx(1.0)
    assert list(warm.frame["served"][5:7]) == [0, 0]  # arm 0's backend was still warm
    assert list(cold.frame["served"][5:7]) == [3, 0]


def test_a_thread_pool_resize_is_in_place_and_a_process_pool_resize_is_not() -> None:
    arms = arms_from_spec([
        {"concurrency": "threads", "workers": 2},
        {"concurrency": "threads", "workers": 8, "scheduler": "mlfq"},
        {"concurrency": "processes", "workers": 1},
        {"concurrency": "processes", "workers": 4},
    ])
    assert COSTS.in_place(arms[0], arms[1]) and COSTS.cost_s(arms[0], arms[1]) == 0.0
    assert not COSTS.in_place(arms[2], arms[3]) and COSTS.cost_s(arms[2], arms[3]) == 2.5
