"""UCB1 (Auer, Cesa-Bianchi & Fischer, 2002): optimism in the face of uncertainty.

Each arm is played once; then the arm with the largest upper confidence bound

    mean_i + alpha * sqrt(2 ln t / n_i)

where ``t`` is the number of pulls so far and ``n_i`` the arm's.  ``alpha = 1`` is the paper's
bound for rewards in [0, 1] (MABWiser's ``UCB1(alpha)`` is the same index); smaller values
explore less.  Stationary: every reward ever seen counts equally.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from servelab.core.bandits.base import BanditPolicy, Context, argmax, arm_indices, pick


class UCB1(BanditPolicy):
    """UCB1 with an exploration scale ``alpha``."""

    name = "ucb1"

    def __init__(self, n_arms: int, seed: int | None = 0, alpha: float = 1.0) -> None:
        super().__init__(n_arms, seed)
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.alpha = float(alpha)
        self._counts = np.zeros(n_arms)
        self._sums = np.zeros(n_arms)

    def index(self) -> np.ndarray:
        """The upper confidence bound of every arm, once every arm has been tried."""
        bonus = self.alpha * np.sqrt(2.0 * math.log(self._counts.sum()) / self._counts)
        return self._sums / self._counts + bonus

    def select(self, context: Context | None = None) -> int:
        if self._counts.min() == 0:
            untried = np.flatnonzero(self._counts == 0)
            self.last_reason = "untried"
            return pick(untried, self.rng)
        self.last_reason = "highest upper confidence bound"
        return argmax(self.index(), self.rng)

    def update(self, arm: int, reward: float, context: Context | None = None) -> None:
        self._counts[arm] += 1.0
        self._sums[arm] += reward

    def values(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self._counts > 0, self._sums / self._counts, np.nan)

    def reset(self, arms: Iterable[int] | None = None) -> None:
        idx = arm_indices(self.n_arms, arms)
        self._counts[idx] = 0.0
        self._sums[idx] = 0.0

    def params(self) -> dict[str, Any]:
        return {"alpha": self.alpha}

    def state(self) -> dict[str, Any]:
        return {"counts": self._counts.tolist(), "sums": self._sums.tolist()}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self._counts[:] = state["counts"]
        self._sums[:] = state["sums"]
