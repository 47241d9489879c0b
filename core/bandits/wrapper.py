"""What the wrapping policies (switch-aware, change-detecting) share: an inner policy.

A wrapper has the inner policy's arms and seed, passes every reward through to it, and saves it
whole inside its own JSON: ``params()["inner"]`` names the inner policy and its parameters,
``state()["inner"]`` is the inner policy's full ``to_dict()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import numpy as np

from servelab.core.bandits.base import BanditPolicy
from servelab.core.bandits.registry import PolicySpec, build

W = TypeVar("W", bound="PolicyWrapper")


class PolicyWrapper(BanditPolicy):
    """A policy around an ``inner`` one; subclasses add their own params and state."""

    def __init__(self, inner: BanditPolicy) -> None:
        super().__init__(inner.n_arms, inner.seed)
        self.inner = inner

    @classmethod
    def create(cls: type[W], n_arms: int, seed: int | None = 0, **params: Any) -> W:
        spec: PolicySpec = params.pop("inner", "ucb1")
        return cls(build(spec, n_arms, seed), **params)

    def values(self) -> np.ndarray:
        return self.inner.values()

    def reset(self, arms: Iterable[int] | None = None) -> None:
        self.inner.reset(arms)

    def inner_params(self) -> dict[str, Any]:
        return {"policy": self.inner.name, "params": self.inner.params()}

    def inner_state(self) -> dict[str, Any]:
        return self.inner.to_dict()

    def load_inner(self, state: Mapping[str, Any]) -> None:
        self.inner.restore(state["inner"])
