"""Queue policies, written once for both the simulator and the live servers.

``POLICIES`` maps a name to its class; :func:`make_policy` builds one by name.
"""

from __future__ import annotations

from typing import Any

from servelab.core.policies.base import QueuePolicy
from servelab.core.policies.fifo import Fifo
from servelab.core.policies.mlfq import Mlfq
from servelab.core.policies.priority import Priority
from servelab.core.policies.sjf import Sjf
from servelab.core.predictor import RuntimePredictor

POLICIES: dict[str, type[QueuePolicy]] = {
    Fifo.name: Fifo,
    Priority.name: Priority,
    Sjf.name: Sjf,
    Mlfq.name: Mlfq,
}


def make_policy(
    name: str, predictor: RuntimePredictor | None = None, **kwargs: Any
) -> QueuePolicy:
    """Build the policy registered as ``name``; ValueError lists the valid names.

    ``predictor`` goes to the policies that order by expected service time (Priority, SJF) and
    is ignored by the others, so callers can pass one predictor to any policy.
    """
    try:
        cls = POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown scheduler {name!r}; valid: {', '.join(POLICIES)}") from None
    if cls.uses_predictor:
        kwargs["predictor"] = predictor
    return cls(**kwargs)


__all__ = ["POLICIES", "Fifo", "Mlfq", "Priority", "QueuePolicy", "Sjf", "make_policy"]
