"""Change detection around any policy: restart when the workload shifts, forget an arm whose
rewards shift.

Two detectors, each optional:

* **Workload features** (checked in :meth:`select`, on the context that describes the window
  just ended): the arrival rate as ``log1p(rate / Context.RATE_SCALE)``, the fast / medium /
  slow shares and ``log1p(input_scale)``.  Their reference is the mean since the last change
  (after ``min_windows`` windows); when some feature differs from it by more than
  ``feature_threshold`` in ``confirm`` consecutive windows that agree with each other (within
  the same threshold: one outlier next to a real shift is no new regime), the workload
  changed: every arm's
  value is stale, so the inner policy restarts from scratch and the reference starts again from
  those windows.  With 27 arms this fires far sooner than any per-arm reward test — one window
  after the shift plus the confirmation.
* **Rewards** (checked in :meth:`update`, M-UCB-style, Cao et al. 2019): per arm, the last
  ``reward_window`` rewards; when the mean of the newer half differs from that of the older half
  by more than ``reward_threshold``, only that arm is reset in the inner policy (the others
  keep what they learned).  It catches shifts the features miss (a co-located job, a thermal
  limit); ``reward_window = 0`` turns it off.

The thresholds are in feature units (shares, log rates) and reward units (normalised rewards in
[0, 1]); the defaults ignore Poisson noise at tens of requests per window.  Do not wrap a
contextual policy (LinUCB): the context is what it learns from, not a reason to forget.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from servelab.core.bandits.base import BanditPolicy, Context, arm_indices
from servelab.core.bandits.wrapper import PolicyWrapper

FEATURES = ("rate", "fast", "medium", "slow", "input_scale")
_LOG_SCALED = {"rate": Context.RATE_SCALE, "input_scale": 1.0}


def features(context: Context, names: tuple[str, ...] = FEATURES) -> np.ndarray:
    """The watched features of ``context`` (rate and input scale log-scaled)."""
    out = np.empty(len(names))
    for i, name in enumerate(names):
        v = float(getattr(context, name))
        scale = _LOG_SCALED.get(name)
        out[i] = v if scale is None else math.log1p(max(v, 0.0) / scale)
    return out


class ChangeDetect(PolicyWrapper):
    """Restart the inner policy on a workload shift; reset one arm on a reward shift."""

    name = "change_detect"

    def __init__(self, inner: BanditPolicy, features: Iterable[str] = FEATURES,
                 feature_threshold: float = 0.15, confirm: int = 2, min_windows: int = 3,
                 reward_window: int = 20, reward_threshold: float = 0.2) -> None:
        super().__init__(inner)
        self.features = tuple(features)
        unknown = set(self.features) - set(Context.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown context features {sorted(unknown)}; valid: "
                             f"{', '.join(Context.__dataclass_fields__)}")
        if feature_threshold <= 0 or reward_threshold <= 0:
            raise ValueError("feature_threshold and reward_threshold must be > 0")
        if confirm < 1 or min_windows < 1:
            raise ValueError("confirm and min_windows must be >= 1")
        if reward_window < 0 or reward_window % 2:
            raise ValueError(f"reward_window must be even and >= 0, got {reward_window}")
        self.feature_threshold = float(feature_threshold)
        self.confirm = int(confirm)
        self.min_windows = int(min_windows)
        self.reward_window = int(reward_window)
        self.reward_threshold = float(reward_threshold)
        self._ref = np.zeros(len(self.features))  # mean features since the last change
        self._ref_n = 0
        self._pending: list[np.ndarray] = []  # consecutive windows off the reference
        self._rewards = np.zeros((self.n_arms, self.reward_window))  # ring buffer per arm
        self._pulls = np.zeros(self.n_arms, dtype=np.int64)  # since the arm's last reset
        self.restarts = 0
        self.arm_resets = 0
        self._note = ""  # a detection since the last select, prefixed to its reason

    def select(self, context: Context | None = None) -> int:
        if context is not None and self.features:
            self._watch(features(context, self.features))
        arm = self.inner.select(context)
        note, self._note = self._note, ""
        self.last_reason = f"{note}; {self.inner.last_reason}" if note else self.inner.last_reason
        return arm

    def _watch(self, x: np.ndarray) -> None:
        if self._ref_n >= self.min_windows:
            off = np.abs(x - self._ref)
            worst = int(np.argmax(off))
            if off[worst] > self.feature_threshold:
                if self._pending and np.abs(x - self._pending[0]).max() > self.feature_threshold:
                    self._pending.clear()  # off the reference, but not where the last one was
                self._pending.append(x)
                if len(self._pending) >= self.confirm:
                    self._restart(worst, x)
                return
        self._pending.clear()
        self._ref_n += 1
        self._ref += (x - self._ref) / self._ref_n

    def _restart(self, feature: int, x: np.ndarray) -> None:
        self._note = (f"workload changed ({self.features[feature]} feature "
                      f"{self._ref[feature]:.3g} -> {x[feature]:.3g}): restarted")
        self._ref = np.mean(self._pending, axis=0)
        self._ref_n = len(self._pending)
        self._pending.clear()
        self.reset()
        self.restarts += 1

    def update(self, arm: int, reward: float, context: Context | None = None) -> None:
        self.inner.update(arm, reward, context)
        w = self.reward_window
        if not w:
            return
        n = int(self._pulls[arm])
        self._rewards[arm, n % w] = reward
        self._pulls[arm] = n + 1
        if n + 1 < w:
            return
        row, h = self._rewards[arm], w // 2
        s = (n + 1 - h) % w  # the slot of the oldest reward in the newer half
        newer = row[s:s + h].sum() if s + h <= w else row[s:].sum() + row[:s + h - w].sum()
        older = row.sum() - newer
        newer, older = newer / h, older / h
        if abs(newer - older) > self.reward_threshold:
            self.reset([arm])
            self.arm_resets += 1
            self._note = f"arm {arm}'s reward moved {older:.3g} -> {newer:.3g}: arm reset"

    def reset(self, arms: Iterable[int] | None = None) -> None:
        idx = arm_indices(self.n_arms, arms)
        self.inner.reset(idx.tolist())
        self._rewards[idx] = 0.0
        self._pulls[idx] = 0

    def params(self) -> dict[str, Any]:
        return {"inner": self.inner_params(), "features": list(self.features),
                "feature_threshold": self.feature_threshold, "confirm": self.confirm,
                "min_windows": self.min_windows, "reward_window": self.reward_window,
                "reward_threshold": self.reward_threshold}

    def state(self) -> dict[str, Any]:
        filled = np.minimum(self._pulls, self.reward_window)
        return {"inner": self.inner_state(), "ref": self._ref.tolist(), "ref_n": self._ref_n,
                "pending": [p.tolist() for p in self._pending], "pulls": self._pulls.tolist(),
                "rewards": [row[:k].tolist() for row, k in zip(self._rewards, filled, strict=True)],
                "restarts": self.restarts, "arm_resets": self.arm_resets, "note": self._note}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.load_inner(state)
        self._ref[:] = state["ref"]
        self._ref_n = int(state["ref_n"])
        self._pending = [np.array(p) for p in state["pending"]]
        self._pulls[:] = state["pulls"]
        self._rewards[:] = 0.0
        for arm, row in enumerate(state["rewards"]):
            self._rewards[arm, :len(row)] = row
        self.restarts = int(state["restarts"])
        self.arm_resets = int(state["arm_resets"])
        self._note = str(state.get("note", ""))
