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

Beyond the first cut of this interface (``select`` / ``update`` / ``params`` / ``state`` /
``load_state`` / ``to_dict``, unchanged), every policy also has:

* ``values()`` — each arm's current estimate of its mean reward (NaN where unknown), what the
  policy would exploit; the switch-aware wrapper weighs gains with it, the gateway shows it;
* ``reset(arms=None)`` — forget everything (or only ``arms``), for change-detecting restarts;
* ``last_reason`` — a one-line why for the last selection (the live gateway shows it);
* ``to_dict()`` also stores the random generator's state under ``"rng"``, so
  ``from_dict(to_dict())`` continues with exactly the same choices; ``create(n_arms, seed,
  **params)`` is the constructor the registry calls (wrappers override it to build their inner
  policy from a name or a dict).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, TypeVar

import numpy as np

P = TypeVar("P", bound="BanditPolicy")


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
        self.last_reason = ""

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

    def values(self) -> np.ndarray:
        """Each arm's estimated mean reward, NaN where the policy has no estimate."""
        return np.full(self.n_arms, np.nan)

    def reset(self, arms: Iterable[int] | None = None) -> None:
        """Forget what was learned about ``arms`` (all arms when None)."""
        raise NotImplementedError(f"{self.name} cannot reset")

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.name, "n_arms": self.n_arms, "seed": self.seed,
                "params": self.params(), "state": self.state(),
                "rng": self.rng.bit_generator.state}

    @classmethod
    def create(cls: type[P], n_arms: int, seed: int | None = 0, **params: Any) -> P:
        """A fresh policy from its JSON-able parameters (what :meth:`params` returns)."""
        return cls(n_arms, seed, **params)

    @classmethod
    def from_dict(cls: type[P], d: Mapping[str, Any]) -> P:
        """The policy :meth:`to_dict` described, continuing exactly where it was."""
        policy = cls.create(int(d["n_arms"]), d.get("seed"), **d.get("params", {}))
        policy.restore(d)
        return policy

    def restore(self, d: Mapping[str, Any]) -> None:
        """Load a :meth:`to_dict` of this same policy (state and random generator) into self."""
        if d.get("policy") != self.name or int(d["n_arms"]) != self.n_arms:
            raise ValueError(f"a {d.get('policy')} policy with {d.get('n_arms')} arms cannot be "
                             f"loaded into {self.name} with {self.n_arms} arms")
        self.load_state(d["state"])
        if "rng" in d:
            self.rng.bit_generator.state = d["rng"]


def argmax(values: np.ndarray, rng: np.random.Generator) -> int:
    """The index of the largest value (``values`` has no NaN), ties broken by ``rng``."""
    ties = np.flatnonzero(values == values[values.argmax()])
    if len(ties) == 1:
        return int(ties[0])
    return int(ties[rng.integers(len(ties))])


def pick(candidates: np.ndarray, rng: np.random.Generator) -> int:
    """One of the ``candidates`` indices, uniformly by ``rng``."""
    return int(candidates[rng.integers(len(candidates))]) if len(candidates) > 1 else int(candidates[0])


def arm_indices(n_arms: int, arms: Iterable[int] | None) -> np.ndarray:
    """``arms`` as an index array, every arm when None (what :meth:`BanditPolicy.reset` takes)."""
    if arms is None:
        return np.arange(n_arms)
    idx = np.fromiter(arms, dtype=np.int64)
    if len(idx) and (idx.min() < 0 or idx.max() >= n_arms):
        raise ValueError(f"arms {idx.tolist()} out of range for {n_arms} arms")
    return idx
