"""The bandit interface: one seeded object per policy, no I/O, no clock.

A policy chooses among ``n_arms`` arms (indices; the meta layer maps them to ServerConfigs)
once per decision window and learns from the reward that window earned.  The same object runs
in the simulator (``servelab meta train`` / ``eval``) and in the live gateway, so nothing here
may read the time, the network or the disk.

Rewards are expected in about [0, 1]; the meta layer normalises the raw window reward
(throughput / (1 + p99 s), or goodput) by the window's offered rate, which keeps the ranking of
arms within a window and makes the confidence bounds meaningful.

A policy's whole state is JSON-able (``to_dict`` / ``from_dict``): a policy file trained in
simulation is the live gateway's prior.  Never pickle.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class Context:
    """The workload as the policy sees it at a decision: the last window's features.

    ``fast`` / ``medium`` / ``slow`` are the shares of requests by service class (sum ≈ 1);
    ``cpu`` and ``memory`` are machine utilisation in [0, 1]; latencies are in seconds;
    ``input_scale`` is the mean input size relative to the model's nominal one (1 = nominal).
    """

    rate: float = 0.0
    fast: float = 1.0
    medium: float = 0.0
    slow: float = 0.0
    cpu: float = 0.0
    memory: float = 0.0
    p95_s: float = 0.0
    p99_s: float = 0.0
    input_scale: float = 1.0

    RATE_SCALE: ClassVar[float] = 100.0
    """req/s that maps to 1.0 in :meth:`vector` (log-scaled above it)."""

    def vector(self) -> np.ndarray:
        """Features for a linear model, each about in [0, 1], with a trailing bias term."""
        return np.array([
            math.log1p(max(self.rate, 0.0) / self.RATE_SCALE),
            self.fast, self.medium, self.slow,
            min(max(self.cpu, 0.0), 1.0), min(max(self.memory, 0.0), 1.0),
            math.log1p(max(self.p95_s, 0.0)), math.log1p(max(self.p99_s, 0.0)),
            math.log1p(max(self.input_scale, 0.0)),
            1.0,
        ])

    DIM: ClassVar[int] = 10

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Context:
        names = {f.name for f in fields(cls)}
        return cls(**{k: float(v) for k, v in d.items() if k in names})


class BanditPolicy(ABC):
    """Pick an arm per decision window; learn from its reward.

    Subclasses set ``name`` (the registry key) and implement :meth:`select`, :meth:`update`,
    :meth:`params` and the JSON state (:meth:`state` / :meth:`load_state`).  ``seed`` seeds
    every random choice: the same seed and the same rewards give the same choices.
    """

    name: ClassVar[str]
    contextual: ClassVar[bool] = False

    def __init__(self, n_arms: int, seed: int | None = 0) -> None:
        if n_arms < 1:
            raise ValueError(f"a bandit needs at least one arm, got {n_arms}")
        self.n_arms = int(n_arms)
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    @abstractmethod
    def select(self, context: Context | None = None) -> int:
        """The arm to run for the next window."""

    @abstractmethod
    def update(self, arm: int, reward: float, context: Context | None = None) -> None:
        """Learn that ``arm`` earned ``reward`` in a window that began in ``context``."""

    def params(self) -> dict[str, Any]:
        """Constructor arguments besides ``n_arms`` and ``seed`` (JSON-able)."""
        return {}

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """Everything learned so far, JSON-able."""

    @abstractmethod
    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state` returned (a prior trained elsewhere)."""

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.name, "n_arms": self.n_arms, "seed": self.seed,
                "params": self.params(), "state": self.state()}
