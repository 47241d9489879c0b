"""Sliding-window UCB (Garivier & Moulines, 2011): UCB over the last ``window`` decisions.

Only the last ``window`` (arm, reward) pairs count, whichever arms they belong to; an arm with
no pull inside the window is played first (a random one of them), otherwise the arm maximising

    mean_i(window) + alpha * sqrt(2 ln min(t, window) / n_i(window)).

Garivier & Moulines write the bonus as ``B sqrt(ξ ln min(t, τ) / N)``: ``alpha = sqrt(ξ / 2)``
for rewards bounded by ``B = 1``, so their ξ = 0.6 is ``alpha ≈ 0.55``.  The window trades
tracking against noise: they suggest ``τ ≈ 2 sqrt(T ln T / Υ)`` for ``Υ`` changes in ``T``
decisions (about 140 for an hour of 1 s windows and six phases).  Keep it several times the
number of arms, or the policy does little but re-explore.  The window counts updates: a caller
that updates every arm each decision (full-information training) covers fewer decisions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from servelab.core.bandits.base import BanditPolicy, Context, argmax, arm_indices, pick


class SlidingWindowUCB(BanditPolicy):
    """UCB over a sliding window of the last ``window`` decisions."""

    name = "sw_ucb"

    def __init__(self, n_arms: int, seed: int | None = 0, window: int = 200,
                 alpha: float = 0.55) -> None:
        super().__init__(n_arms, seed)
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.window = int(window)
        self.alpha = float(alpha)
        self._t = 0  # decisions seen; the ring buffer's next slot is t % window
        self._arms = np.full(self.window, -1, dtype=np.int64)  # -1: empty slot
        self._rewards = np.zeros(self.window)
        self._counts = np.zeros(n_arms)
        self._sums = np.zeros(n_arms)

    def select(self, context: Context | None = None) -> int:
        if self._counts.min() == 0:
            unseen = np.flatnonzero(self._counts == 0)
            self.last_reason = "not pulled within the window"
            return pick(unseen, self.rng)
        bonus = self.alpha * np.sqrt(2.0 * math.log(min(self._t, self.window)) / self._counts)
        self.last_reason = "highest upper confidence bound in the window"
        return argmax(self._sums / self._counts + bonus, self.rng)

    def update(self, arm: int, reward: float, context: Context | None = None) -> None:
        slot = self._t % self.window
        old = int(self._arms[slot])
        if old >= 0:
            self._counts[old] -= 1.0
            self._sums[old] = self._sums[old] - self._rewards[slot] if self._counts[old] else 0.0
        self._arms[slot] = arm
        self._rewards[slot] = reward
        self._counts[arm] += 1.0
        self._sums[arm] += reward
        self._t += 1

    def values(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self._counts > 0, self._sums / self._counts, np.nan)

    def reset(self, arms: Iterable[int] | None = None) -> None:
        idx = arm_indices(self.n_arms, arms)
        self._arms[np.isin(self._arms, idx)] = -1
        self._counts[idx] = 0.0
        self._sums[idx] = 0.0

    def params(self) -> dict[str, Any]:
        return {"window": self.window, "alpha": self.alpha}

    def state(self) -> dict[str, Any]:
        return {"t": self._t, "arms": self._arms.tolist(), "rewards": self._rewards.tolist(),
                "counts": self._counts.tolist(), "sums": self._sums.tolist()}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self._t = int(state["t"])
        self._arms[:] = state["arms"]
        self._rewards[:] = state["rewards"]
        self._counts[:] = state["counts"]
        self._sums[:] = state["sums"]
