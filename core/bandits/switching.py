"""Switch-aware selection: keep the running configuration unless moving pays for itself.

Moving between configurations costs what calibration measured (a backend's start and warm-up,
draining the old one): ``cost[from][to]`` seconds during which the server earns about nothing.
:class:`SwitchAware` wraps any policy.  Each window it asks the inner policy for its choice
(the challenger) and keeps the current arm unless

1. the current arm has run at least ``min_dwell`` windows, and
2. the switch pays (*exploit*): the challenger's estimated gain over the next ``horizon_s``
   seconds exceeds what the switch loses plus a hysteresis margin,

       H · v_to − min(cost / window_s, H) · v_to − H · v_from  >  hysteresis · H · |v_from|

   with ``H = horizon_s / window_s`` windows and ``v`` the inner policy's :meth:`values`
   (with zero cost: ``v_to > (1 + hysteresis) · v_from``); or
3. the inner policy insists (*explore*): either arm has no estimate yet, or the inner policy
   has asked to move in ``cost / (explore_share · window_s)`` windows since the last switch.
   An optimistic policy's exploration is thus honoured, but rarely enough that exploratory
   switches cost at most about ``explore_share`` of the time.  A free switch is honoured at
   once: with zero cost, zero hysteresis and ``min_dwell = 1`` the wrapper plays exactly what
   its inner policy plays.

Rewards pass through unchanged with the arm actually played, so the inner policy learns from
what ran.  ``last_reason`` says in one line why the policy switched or stayed; ``switches``
counts the switches.  ``cost`` is a number (every switch), a square matrix, or a callable
``(from_arm, to_arm) -> seconds``; it is stored as a matrix, so the policy stays JSON.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias

import numpy as np

from servelab.core.bandits.base import BanditPolicy, Context
from servelab.core.bandits.wrapper import PolicyWrapper

SwitchCost: TypeAlias = "float | Iterable[Iterable[float]] | Callable[[int, int], float]"


def cost_matrix(cost: SwitchCost, n_arms: int) -> np.ndarray:
    """``cost`` as an ``n_arms`` × ``n_arms`` matrix of seconds with a zero diagonal."""
    if callable(cost):
        m = np.array([[float(cost(i, j)) for j in range(n_arms)] for i in range(n_arms)])
    elif isinstance(cost, (int, float)):
        m = np.full((n_arms, n_arms), float(cost))
    else:
        m = np.array([[float(c) for c in row] for row in cost])
    if m.shape != (n_arms, n_arms):
        raise ValueError(f"switch cost matrix must be {n_arms}x{n_arms}, got {m.shape}")
    if (m < 0).any() or not np.isfinite(m).all():
        raise ValueError("switch costs must be finite and >= 0 seconds")
    np.fill_diagonal(m, 0.0)
    return m


class SwitchAware(PolicyWrapper):
    """Minimum dwell, hysteresis and a cost-vs-gain test around an inner policy."""

    name = "switch_aware"

    def __init__(self, inner: BanditPolicy, cost: SwitchCost = 0.0, window_s: float = 1.0,
                 horizon_s: float = 30.0, min_dwell: int = 2, hysteresis: float = 0.02,
                 explore_share: float = 0.1) -> None:
        super().__init__(inner)
        if window_s <= 0 or horizon_s <= 0:
            raise ValueError("window_s and horizon_s must be > 0")
        if min_dwell < 1 or hysteresis < 0:
            raise ValueError("min_dwell must be >= 1 and hysteresis >= 0")
        if not 0.0 < explore_share <= 1.0:
            raise ValueError(f"explore_share must be in (0, 1], got {explore_share}")
        self.cost = cost_matrix(cost, self.n_arms)
        self.window_s = float(window_s)
        self.horizon_s = float(horizon_s)
        self.min_dwell = int(min_dwell)
        self.hysteresis = float(hysteresis)
        self.explore_share = float(explore_share)
        self.current: int | None = None
        self.dwell = 0  # windows the current arm has run, this one included
        self.asked = 0  # windows since the last switch in which the inner policy asked to move
        self.switches = 0

    def select(self, context: Context | None = None) -> int:
        challenger = self.inner.select(context)
        cur = self.current
        if cur is None:
            return self._switch(challenger, f"start on arm {challenger}")
        if challenger == cur:
            return self._stay(f"stay on {cur}: the policy agrees")
        self.asked += 1
        if self.dwell < self.min_dwell:
            return self._stay(f"stay on {cur}: dwell {self.dwell}/{self.min_dwell} windows "
                              f"before moving to {challenger}")
        cost_s = float(self.cost[cur, challenger])
        v = self.inner.values()
        v_from, v_to = float(v[cur]), float(v[challenger])
        if math.isnan(v_from) or math.isnan(v_to):
            return self._switch(challenger, f"switch {cur}->{challenger}: explore an untried "
                                            f"arm ({cost_s:g} s switch)")
        h = self.horizon_s / self.window_s
        gain = h * (v_to - v_from) - min(cost_s / self.window_s, h) * v_to
        if gain > self.hysteresis * h * abs(v_from):
            return self._switch(challenger, f"switch {cur}->{challenger}: gain {gain:.3g} over "
                                            f"{self.horizon_s:g} s pays the {cost_s:g} s switch")
        patience = cost_s / (self.explore_share * self.window_s)
        if self.asked >= patience:
            return self._switch(challenger, f"switch {cur}->{challenger}: explore, asked "
                                            f"{self.asked} times ({cost_s:g} s switch)")
        return self._stay(f"stay on {cur}: {challenger}'s gain {gain:.3g} over "
                          f"{self.horizon_s:g} s does not pay a {cost_s:g} s switch "
                          f"(asked {self.asked}/{math.ceil(patience)})")

    def _switch(self, arm: int, reason: str) -> int:
        if self.current is not None:
            self.switches += 1
        self.current, self.dwell, self.asked, self.last_reason = arm, 1, 0, reason
        return arm

    def _stay(self, reason: str) -> int:
        assert self.current is not None
        self.dwell += 1
        self.last_reason = reason
        return self.current

    def update(self, arm: int, reward: float, context: Context | None = None) -> None:
        self.inner.update(arm, reward, context)

    def params(self) -> dict[str, Any]:
        return {"inner": self.inner_params(), "cost": self._cost_param(),
                "window_s": self.window_s, "horizon_s": self.horizon_s,
                "min_dwell": self.min_dwell, "hysteresis": self.hysteresis,
                "explore_share": self.explore_share}

    def _cost_param(self) -> float | list[list[float]]:
        """The cost matrix, or the one number every switch costs when they are all equal."""
        off = self.cost[~np.eye(self.n_arms, dtype=bool)]
        if len(off) == 0 or (off == off[0]).all():
            return float(off[0]) if len(off) else 0.0
        return self.cost.tolist()

    def state(self) -> dict[str, Any]:
        return {"inner": self.inner_state(), "current": self.current, "dwell": self.dwell,
                "asked": self.asked, "switches": self.switches, "last_reason": self.last_reason}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.load_inner(state)
        self.current = state["current"]
        self.dwell = int(state["dwell"])
        self.asked = int(state["asked"])
        self.switches = int(state["switches"])
        self.last_reason = str(state.get("last_reason", ""))
