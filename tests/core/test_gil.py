"""The fluid GIL model: no stretch below the token's capacity, the right stretch above it
(cross-checked against scipy's root finder), and what two threads side by side get."""

from __future__ import annotations

import pytest
from scipy.optimize import brentq

from servelab.core.gil import capacity, pair_rates, rates, stretch


def test_no_stretch_while_the_token_has_room():
    assert stretch([0.3, 0.4], 1.0, 0.0) == 1.0
    assert rates([0.3, 0.4], 1.0, 0.0) == [1.0, 1.0]
    assert stretch([], 1.0, 0.5) == 1.0


@pytest.mark.parametrize("shares", [[1.0, 1.0], [0.75, 0.75], [0.9, 0.2], [0.5, 0.6, 0.7, 0.99]])
@pytest.mark.parametrize("overhead", [0.0, 0.3])
def test_stretch_solves_the_token_balance(shares, overhead):
    cap = capacity(len(shares), overhead)
    if sum(shares) <= cap:
        assert stretch(shares, 1.0, overhead) == 1.0
        return

    def excess(x: float) -> float:
        return sum(g / (1 - g + g * x) for g in shares) - cap

    expected = brentq(excess, 1.0, 1e6, xtol=1e-12)
    assert stretch(shares, 1.0, overhead) == pytest.approx(expected, rel=1e-6)
    got = rates(shares, 1.0, overhead)
    assert sum(g * r for g, r in zip(shares, got, strict=True)) == pytest.approx(cap, rel=1e-6)


def test_a_thread_that_rarely_holds_the_gil_is_barely_slowed():
    hog, light = rates([1.0, 0.1], 1.0, 0.0)
    assert light > 0.98 and hog < 0.91  # the token is over-subscribed by 10%: the hog pays


def test_two_gil_bound_threads_share_the_token_and_contention_wastes_it():
    assert pair_rates(1.0, 1.0, 0.0) == pytest.approx((0.5, 0.5))
    a, b = pair_rates(1.0, 1.0, 0.25)
    assert a == pytest.approx(0.4) and b == pytest.approx(0.4)  # cap(2) = 0.8, shared
    assert capacity(1, 5.0) == 1.0
