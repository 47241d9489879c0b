"""ε-greedy exactly as the seed describes it: the baseline.

With probability ``epsilon`` (0.1) the policy plays a uniformly random arm; otherwise the arm
whose mean over its last ``window`` (100) rewards is highest.  Arms never tried are played
first (a random one of them), and ties are broken by the seeded generator.  The window makes the
values forget slowly: an arm's value is the mean of its own last 100 pulls, however old.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from servelab.core.bandits.base import BanditPolicy, Context, argmax, arm_indices, pick


class EpsilonGreedy(BanditPolicy):
    """ε-greedy over per-arm means of the last ``window`` rewards."""

    name = "epsilon_greedy"

    def __init__(self, n_arms: int, seed: int | None = 0, epsilon: float = 0.1,
                 window: int = 100) -> None:
        super().__init__(n_arms, seed)
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.epsilon = float(epsilon)
        self.window = int(window)
        self._rewards = np.zeros((n_arms, self.window))  # ring buffer per arm
        self._pulls = np.zeros(n_arms, dtype=np.int64)  # pulls since the arm's last reset
        self._mean = np.full(n_arms, np.nan)

    def select(self, context: Context | None = None) -> int:
        if self._pulls.min() == 0:
            untried = np.flatnonzero(self._pulls == 0)
            self.last_reason = "untried"
            return pick(untried, self.rng)
        if self.rng.random() < self.epsilon:
            self.last_reason = "explore (random)"
            return int(self.rng.integers(self.n_arms))
        self.last_reason = f"best mean of the last {self.window}"
        return argmax(self._mean, self.rng)

    def update(self, arm: int, reward: float, context: Context | None = None) -> None:
        n = int(self._pulls[arm])
        self._rewards[arm, n % self.window] = reward
        self._pulls[arm] = n + 1
        self._mean[arm] = self._rewards[arm].sum() / min(n + 1, self.window)

    def values(self) -> np.ndarray:
        return self._mean.copy()

    def reset(self, arms: Iterable[int] | None = None) -> None:
        idx = arm_indices(self.n_arms, arms)
        self._rewards[idx] = 0.0
        self._pulls[idx] = 0
        self._mean[idx] = np.nan

    def params(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, "window": self.window}

    def state(self) -> dict[str, Any]:
        filled = np.minimum(self._pulls, self.window)
        return {"pulls": self._pulls.tolist(),
                "rewards": [row[:k].tolist() for row, k in zip(self._rewards, filled, strict=True)]}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.reset()
        self._pulls[:] = state["pulls"]
        for arm, row in enumerate(state["rewards"]):
            self._rewards[arm, :len(row)] = row
            if row:
                self._mean[arm] = self._rewards[arm].sum() / len(row)
