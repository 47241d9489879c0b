"""Policies by name for the meta commands: ``NAME`` or ``NAME:key=value,key=value``.

The policies themselves live in :mod:`servelab.core.bandits` (its registry: ``BANDITS``,
``make_bandit``, ``load_bandit``).  A spec's values are read as JSON where they parse (numbers,
``true``), else as strings, so ``switch_aware:inner=linucb,min_dwell=3`` builds a switch-aware
wrapper around LinUCB.  The spec text is also the policy's key in a policy file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def _registry() -> tuple[Mapping[str, Any], Any, Any]:
    import servelab.core.bandits as bandits

    return bandits.BANDITS, bandits.make_bandit, bandits.load_bandit


EXTRA_DEFAULTS = ("switch_aware:inner=linucb",)
"""Beyond one of each registered policy (wrappers around their default inner policy), the
defaults train and evaluate the contextual policy behind the switching-cost test."""


def available() -> list[str]:
    """The registered policy names."""
    return list(_registry()[0])


def default_policies() -> list[str]:
    """What ``meta train`` / ``meta eval`` run when no ``--policy`` is given."""
    names = available()
    return names + [s for s in EXTRA_DEFAULTS if parse_spec(s)[0] in names]


def parse_spec(text: str) -> tuple[str, dict[str, Any]]:
    """``"sw_ucb:window=50"`` -> ``("sw_ucb", {"window": 50})``."""
    name, _, rest = text.partition(":")
    name = name.strip()
    if not name:
        raise ValueError(f"policy spec {text!r}: no name")
    params: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in _split_top(rest))):
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"policy spec {text!r}: expected key=value, got {item!r}")
        try:
            params[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            params[key.strip()] = raw.strip()
    return name, params


SWITCH_AWARE = "switch_aware"


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets and braces (JSON values may hold commas)."""
    out: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def make_policy(
    spec: str, n_arms: int, seed: int | None = 0, cost: Any = None,
    window_s: float | None = None,
) -> Any:
    """A fresh policy from a spec (ValueError names the valid policies).  A switch-aware
    wrapper given no ``cost`` / ``window_s`` of its own gets these: the arms' switching-cost
    lost-service matrix in seconds (``SwitchCosts.lost_matrix``) and the decision window."""
    bandits, make, _ = _registry()
    name, params = parse_spec(spec)
    if name not in bandits:
        raise ValueError(f"unknown policy {name!r}; valid: {', '.join(bandits)}")
    if name == SWITCH_AWARE:
        if cost is not None:
            params.setdefault("cost", cost)
        if window_s is not None:
            params.setdefault("window_s", window_s)
    return make(name, n_arms, seed, **params)


def load_policy(state: Mapping[str, Any]) -> Any:
    """A policy from its ``to_dict()`` (after a JSON round trip)."""
    return _registry()[2](state)


def inner_contextual(policy: Any) -> Any:
    """The contextual policy inside ``policy`` (itself, or a wrapper's inner), else None."""
    p = policy
    while p is not None:
        if getattr(p, "contextual", False):
            return p
        p = getattr(p, "inner", None)
    return None
