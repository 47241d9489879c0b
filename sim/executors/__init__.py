"""Sweep executors: where the points of a sweep run.

``EXECUTORS`` maps a name to its class; :func:`make_executor` builds one by name.  Every
executor takes a picklable top-level function and a list of items and yields ``(item, result)``
pairs as they finish (in any order); a point that raises yields the exception as its result, so
one failure never loses the rest of a sweep.
"""

from __future__ import annotations

from typing import Any

from servelab.sim.executors.base import Executor
from servelab.sim.executors.local import LocalExecutor
from servelab.sim.executors.ray import RayExecutor

EXECUTORS: dict[str, type[Executor]] = {
    LocalExecutor.name: LocalExecutor,
    RayExecutor.name: RayExecutor,
}


def make_executor(name: str, **kwargs: Any) -> Executor:
    """Build the executor registered as ``name``; ValueError lists the valid names."""
    try:
        cls = EXECUTORS[name]
    except KeyError:
        raise ValueError(f"unknown executor {name!r}; valid: {', '.join(EXECUTORS)}") from None
    return cls(**kwargs)


__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "RayExecutor", "make_executor"]
