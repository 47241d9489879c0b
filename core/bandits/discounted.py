"""Discounted UCB (Kocsis & Szepesvári 2006; Garivier & Moulines 2011): UCB with fading memory.

Every decision multiplies all arms' pull counts and reward sums by ``gamma`` before adding the
new reward, so a reward ``k`` decisions old weighs ``gamma**k`` (memory ≈ 1 / (1 - gamma)
decisions: 100 at the default 0.99).  An arm never pulled since its last reset is played first;
otherwise the arm maximising

    X_i / N_i + alpha * sqrt(2 ln n / N_i),   n = sum of the N_i,

with ``X_i`` / ``N_i`` the discounted sum and count.  An arm left alone sees ``N_i`` shrink and
its bonus grow, so it is retried: the policy notices when a neglected arm became the best.
Garivier & Moulines' bonus ``2B sqrt(ξ ln n / N)`` is ``alpha = sqrt(2 ξ)`` for ``B = 1``
(ξ = 0.6: ``alpha ≈ 1.1``); the default explores less.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from servelab.core.bandits.base import BanditPolicy, Context, argmax, arm_indices, pick


class DiscountedUCB(BanditPolicy):
    """UCB with discounted counts and sums (discount ``gamma`` per decision)."""

    name = "discounted_ucb"

    def __init__(self, n_arms: int, seed: int | None = 0, gamma: float = 0.99,
                 alpha: float = 0.55) -> None:
        super().__init__(n_arms, seed)
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {gamma}")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.gamma = float(gamma)
        self.alpha = float(alpha)
        self._counts = np.zeros(n_arms)
        self._sums = np.zeros(n_arms)
        self._tried = np.zeros(n_arms, dtype=bool)

    def select(self, context: Context | None = None) -> int:
        if not self._tried.all():
            untried = np.flatnonzero(~self._tried)
            self.last_reason = "untried"
            return pick(untried, self.rng)
        n = self._counts.sum()
        with np.errstate(divide="ignore", invalid="ignore"):  # a count faded to 0: index inf
            bonus = self.alpha * np.sqrt(2.0 * math.log(max(n, 1.0)) / self._counts)
            index = np.where(self._counts > 0, self._sums / self._counts + bonus, np.inf)
        self.last_reason = "highest discounted upper confidence bound"
        return argmax(index, self.rng)

    def update(self, arm: int, reward: float, context: Context | None = None) -> None:
        self._counts *= self.gamma
        self._sums *= self.gamma
        self._counts[arm] += 1.0
        self._sums[arm] += reward
        self._tried[arm] = True

    def values(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self._tried & (self._counts > 0), self._sums / self._counts, np.nan)

    def reset(self, arms: Iterable[int] | None = None) -> None:
        idx = arm_indices(self.n_arms, arms)
        self._counts[idx] = 0.0
        self._sums[idx] = 0.0
        self._tried[idx] = False

    def params(self) -> dict[str, Any]:
        return {"gamma": self.gamma, "alpha": self.alpha}

    def state(self) -> dict[str, Any]:
        return {"counts": self._counts.tolist(), "sums": self._sums.tolist(),
                "tried": self._tried.tolist()}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self._counts[:] = state["counts"]
        self._sums[:] = state["sums"]
        self._tried[:] = state["tried"]
