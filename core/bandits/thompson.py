"""Thompson sampling (Thompson 1933; Agrawal & Goyal 2012) for rewards in [0, 1].

Each window the policy draws one plausible mean per arm from its posterior and plays the arm
with the largest draw, so arms are played in proportion to the chance that they are best.

Two posteriors (``posterior``):

* ``"beta"`` (default) — Beta(1 + successes, 1 + failures) with the Bernoulli trick of Agrawal
  & Goyal: a reward ``r`` is clipped to [0, 1] and counted as a success with probability ``r``.
  Exact for 0/1 rewards (MABWiser's ThompsonSampling is the same model); for fractional
  rewards its spread is that of a coin with the arm's mean, wide when rewards differ little.
* ``"gaussian"`` — the arm's mean is drawn from Normal(mean, s² / n), where ``s²`` is the
  arm's sample variance shrunk towards ``prior_std²`` by one pseudo-observation.  Its spread
  follows the rewards' actual noise, which suits normalised window rewards that sit close
  together.

Untried arms are played first with either posterior.  Stationary: every reward counts equally.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from servelab.core.bandits.base import BanditPolicy, Context, argmax, arm_indices, pick

POSTERIORS = ("beta", "gaussian")


class Thompson(BanditPolicy):
    """Thompson sampling with a Beta (Bernoulli trick) or Gaussian posterior per arm."""

    name = "thompson"

    def __init__(self, n_arms: int, seed: int | None = 0, posterior: str = "beta",
                 prior_std: float = 0.25) -> None:
        super().__init__(n_arms, seed)
        if posterior not in POSTERIORS:
            raise ValueError(f"unknown posterior {posterior!r}; valid: {', '.join(POSTERIORS)}")
        if prior_std <= 0:
            raise ValueError(f"prior_std must be > 0, got {prior_std}")
        self.posterior = posterior
        self.prior_std = float(prior_std)
        self._n = np.zeros(n_arms)
        self._mean = np.zeros(n_arms)
        self._m2 = np.zeros(n_arms)  # Welford's sum of squared deviations
        self._success = np.zeros(n_arms)  # Bernoulli-trick successes (the beta posterior)

    def select(self, context: Context | None = None) -> int:
        if self._n.min() == 0:
            untried = np.flatnonzero(self._n == 0)
            self.last_reason = "untried"
            return pick(untried, self.rng)
        if self.posterior == "beta":
            draws = self.rng.beta(1.0 + self._success, 1.0 + self._n - self._success)
        else:
            var = (self._m2 + self.prior_std ** 2) / self._n
            draws = self._mean + np.sqrt(var / self._n) * self.rng.standard_normal(self.n_arms)
        self.last_reason = "largest posterior draw"
        return argmax(draws, self.rng)

    def update(self, arm: int, reward: float, context: Context | None = None) -> None:
        n = self._n[arm] + 1.0
        delta = reward - self._mean[arm]
        self._n[arm] = n
        self._mean[arm] += delta / n
        self._m2[arm] += delta * (reward - self._mean[arm])
        if self.posterior == "beta" and self.rng.random() < min(max(reward, 0.0), 1.0):
            self._success[arm] += 1.0

    def values(self) -> np.ndarray:
        """The posterior means (beta: (1 + successes) / (2 + pulls); gaussian: sample means)."""
        if self.posterior == "beta":
            est = (1.0 + self._success) / (2.0 + self._n)
        else:
            est = self._mean.copy()
        est[self._n == 0] = np.nan
        return est

    def reset(self, arms: Iterable[int] | None = None) -> None:
        idx = arm_indices(self.n_arms, arms)
        for a in (self._n, self._mean, self._m2, self._success):
            a[idx] = 0.0

    def params(self) -> dict[str, Any]:
        return {"posterior": self.posterior, "prior_std": self.prior_std}

    def state(self) -> dict[str, Any]:
        return {"n": self._n.tolist(), "mean": self._mean.tolist(), "m2": self._m2.tolist(),
                "success": self._success.tolist()}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self._n[:] = state["n"]
        self._mean[:] = state["mean"]
        self._m2[:] = state["m2"]
        self._success[:] = state["success"]
