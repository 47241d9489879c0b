"""SwitchAware: switch costs, minimum dwell and hysteresis around any inner policy."""

from __future__ import annotations

import numpy as np
import pytest

from servelab.core.bandits import UCB1, SwitchAware, Thompson
from servelab.core.bandits.base import BanditPolicy
from servelab.core.bandits.switching import cost_matrix

CLOSE = np.array([0.50, 0.52, 0.55, 0.58, 0.60])  # close means: UCB1 keeps switching


def play(policy: BanditPolicy, steps: int = 1000, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, 0.1, steps)
    arms = np.empty(steps, dtype=np.int64)
    for t in range(steps):
        arm = policy.select()
        policy.update(arm, float(CLOSE[arm] + noise[t]))
        arms[t] = arm
    return arms


def switches(arms: np.ndarray) -> int:
    return int((arms[1:] != arms[:-1]).sum())


@pytest.mark.parametrize("inner_cls", [UCB1, Thompson])
def test_zero_cost_behaves_like_the_inner_policy(inner_cls):
    """Free switches, no hysteresis, a one-window dwell: exactly the inner policy's choices."""
    alone = play(inner_cls(5, seed=4))
    wrapped = play(SwitchAware(inner_cls(5, seed=4), cost=0.0, min_dwell=1, hysteresis=0.0))
    assert alone.tolist() == wrapped.tolist()


@pytest.mark.parametrize("inner_cls", [UCB1, Thompson])
def test_high_cost_switches_far_less(inner_cls):
    """With 10 s switches the wrapper switches under a fifth as often as its inner policy, yet
    still explores (it is not frozen on its first arm), and once the windows lost to switching
    are counted it earns more."""
    cost = 10.0
    alone = play(inner_cls(5, seed=1))
    policy = SwitchAware(inner_cls(5, seed=1), cost=cost, window_s=1.0, min_dwell=3)
    wrapped = play(policy)
    assert switches(wrapped) < 0.2 * switches(alone), (switches(wrapped), switches(alone))
    assert policy.switches == switches(wrapped) >= len(CLOSE)

    def net(arms: np.ndarray) -> float:
        return float(CLOSE[arms].sum() - cost * CLOSE.mean() * switches(arms))

    assert net(wrapped) > net(alone)


def test_minimum_dwell_is_respected():
    arms = play(SwitchAware(UCB1(5, seed=0), cost=0.0, min_dwell=4, hysteresis=0.0))
    change = np.flatnonzero(arms[1:] != arms[:-1]) + 1
    runs = np.diff(np.concatenate(([0], change)))
    assert len(runs) > 5 and runs.min() >= 4


def test_gain_against_cost_and_the_reasons():
    """The cost-vs-gain rule on known estimates, and the one-line reasons it gives."""

    class Fixed(UCB1):
        """UCB1 that always proposes arm 1, with fixed value estimates."""

        def select(self, context=None):
            return 1

        def values(self):
            return np.array([0.50, 0.60])

    def first_two(**kw):
        p = SwitchAware(Fixed(2), min_dwell=1, hysteresis=0.0, **kw)
        p.current, p.dwell = 0, 1
        return p.select(), p.last_reason

    # over 30 windows the gain is 30 * 0.1 = 3.0 reward-windows; a 4 s switch loses 4 * 0.6
    assert first_two(cost=4.0) == (1, "switch 0->1: gain 0.6 over 30 s pays the 4 s switch")
    arm, reason = first_two(cost=6.0, explore_share=0.1)  # loses 3.6: stay, ask 1 of 60
    assert arm == 0 and reason.startswith("stay on 0: 1's gain -0.6") and "asked 1/60" in reason
    arm, reason = first_two(cost=6.0, horizon_s=60.0)  # a longer horizon pays for it
    assert arm == 1


def test_cost_matrix_forms():
    assert cost_matrix(2.0, 3).tolist() == [[0, 2, 2], [2, 0, 2], [2, 2, 0]]
    assert cost_matrix(lambda i, j: i + 10 * j, 2).tolist() == [[0, 10], [1, 0]]
    with pytest.raises(ValueError, match="3x3"):
        cost_matrix([[0, 1], [1, 0]], 3)
    with pytest.raises(ValueError, match=">= 0"):
        cost_matrix(-1.0, 2)
