"""Disjoint LinUCB (Li, Chu, Langford & Schapire, 2010): a ridge regression per arm.

Each arm ``a`` models the reward as ``theta_a · x`` over the context's features
``x = Context.vector()`` (rate, fast / medium / slow shares, CPU, memory, p95, p99, input scale,
bias) and plays the arm maximising

    theta_a · x + alpha * sqrt(x' A_a^-1 x),   A_a = ridge * I + sum of x x' over its pulls.

The policy keeps ``A_a^-1`` itself and updates it with the Sherman–Morrison formula, so a
decision costs a few small matrix-vector products for all arms at once.  ``alpha`` scales the
exploration (the paper's 1 + sqrt(ln(2/δ)/2) ≈ 2.2 at δ = 0.05 is conservative; 1 is a common
practical choice); ``ridge`` is the prior's precision.  Without a context the default
``Context()`` is assumed.  Stationary: wrap it in nothing that restarts on context shifts —
the context is what it learns from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from servelab.core.bandits.base import BanditPolicy, Context, argmax, arm_indices

_DEFAULT_CONTEXT = Context()


class LinUCB(BanditPolicy):
    """Disjoint LinUCB over :meth:`Context.vector`."""

    name = "linucb"
    contextual = True

    def __init__(self, n_arms: int, seed: int | None = 0, alpha: float = 1.0,
                 ridge: float = 1.0) -> None:
        super().__init__(n_arms, seed)
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        if ridge <= 0:
            raise ValueError(f"ridge must be > 0, got {ridge}")
        self.alpha = float(alpha)
        self.ridge = float(ridge)
        d = Context.DIM
        self._a_inv = np.tile(np.eye(d) / self.ridge, (n_arms, 1, 1))
        self._b = np.zeros((n_arms, d))
        self._theta = np.zeros((n_arms, d))
        self._pulls = np.zeros(n_arms, dtype=np.int64)
        self._last: tuple[Context | None, np.ndarray] = (None, np.zeros(d))

    def _x(self, context: Context | None) -> np.ndarray:
        ctx = _DEFAULT_CONTEXT if context is None else context
        if self._last[0] is not ctx:  # select and update usually see the same context
            self._last = (ctx, ctx.vector())
        return self._last[1]

    def select(self, context: Context | None = None) -> int:
        x = self._x(context)
        a_inv_x = self._a_inv @ x
        index = self._theta @ x + self.alpha * np.sqrt(a_inv_x @ x)
        self.last_reason = "highest upper confidence bound for this context"
        return argmax(index, self.rng)

    def update(self, arm: int, reward: float, context: Context | None = None) -> None:
        x = self._x(context)
        a_inv = self._a_inv[arm]
        a_inv_x = a_inv @ x
        a_inv -= np.outer(a_inv_x, a_inv_x) / (1.0 + x @ a_inv_x)
        self._b[arm] += reward * x
        self._theta[arm] = a_inv @ self._b[arm]
        self._pulls[arm] += 1

    def predict(self, context: Context | None = None) -> np.ndarray:
        """Each arm's predicted reward in ``context`` (no exploration bonus)."""
        return self._theta @ self._x(context)

    def values(self) -> np.ndarray:
        """The predicted rewards in the last context seen (NaN for arms never pulled)."""
        est = self._theta @ self._last[1]
        est[self._pulls == 0] = np.nan
        return est

    def reset(self, arms: Iterable[int] | None = None) -> None:
        idx = arm_indices(self.n_arms, arms)
        self._a_inv[idx] = np.eye(Context.DIM) / self.ridge
        self._b[idx] = 0.0
        self._theta[idx] = 0.0
        self._pulls[idx] = 0

    def params(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "ridge": self.ridge}

    def state(self) -> dict[str, Any]:
        return {"a_inv": self._a_inv.tolist(), "b": self._b.tolist(),
                "theta": self._theta.tolist(), "pulls": self._pulls.tolist(),
                "last_context": None if self._last[0] is None else self._last[0].to_dict()}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self._a_inv[:] = state["a_inv"]
        self._b[:] = state["b"]
        self._theta[:] = state["theta"]
        self._pulls[:] = state["pulls"]
        last = state.get("last_context")
        if last is not None:
            ctx = Context.from_dict(last)
            self._last = (ctx, ctx.vector())
