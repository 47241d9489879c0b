"""The name → policy table and the two ways in: a fresh policy or a saved one.

``BANDITS`` is filled by the package's ``__init__`` (every policy module registers there, in one
list), so importing any policy module makes the whole table available.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

from servelab.core.bandits.base import BanditPolicy

BANDITS: dict[str, type[BanditPolicy]] = {}

PolicySpec: TypeAlias = "str | Mapping[str, Any] | BanditPolicy"
"""A policy as a wrapper's ``inner`` takes it: a registry name, a ``{"policy": name, "params":
{...}}`` dict (a full :meth:`BanditPolicy.to_dict` is loaded with its state), or an object."""


def policy_class(name: str) -> type[BanditPolicy]:
    try:
        return BANDITS[name]
    except KeyError:
        raise ValueError(f"unknown bandit policy {name!r}; valid: {', '.join(BANDITS)}") from None


def make_bandit(name: str, n_arms: int, seed: int | None = 0, **params: Any) -> BanditPolicy:
    """A fresh policy by registry name, e.g. ``make_bandit("sw_ucb", 27, seed=1, window=150)``."""
    return policy_class(name).create(n_arms, seed, **params)


def load_bandit(d: Mapping[str, Any]) -> BanditPolicy:
    """The policy a :meth:`BanditPolicy.to_dict` (after a JSON round trip) describes."""
    return policy_class(str(d["policy"])).from_dict(d)


def build(spec: PolicySpec, n_arms: int, seed: int | None = 0) -> BanditPolicy:
    """A policy from a :data:`PolicySpec` (``n_arms`` and ``seed`` apply unless the dict has them)."""
    if isinstance(spec, BanditPolicy):
        return spec
    if isinstance(spec, str):
        return make_bandit(spec, n_arms, seed)
    if "state" in spec:
        return load_bandit(spec)
    return make_bandit(str(spec["policy"]), int(spec.get("n_arms", n_arms)),
                       spec.get("seed", seed), **spec.get("params", {}))
