"""Runtime predictors: what SJF and Priority ask for a request's expected service time.

A predictor is any object with ``predict(request) -> seconds``; ``observe(request, seconds)``
lets it learn from completed requests.  The learned (gradient-boosting) predictor plugs into the
same interface later.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from servelab.core.requests import Request


@runtime_checkable
class RuntimePredictor(Protocol):
    def predict(self, request: Request) -> float: ...

    def observe(self, request: Request, runtime: float) -> None: ...


class OraclePredictor:
    """Knows the future: returns the request's true ``service_time`` (simulation, upper bound)."""

    name = "oracle"

    def predict(self, request: Request) -> float:
        if request.service_time is None:
            raise ValueError(
                f"oracle predictor needs request.service_time (request {request.id} has none)"
            )
        return request.service_time

    def observe(self, request: Request, runtime: float) -> None:
        return None


class MeanPredictor:
    """Per-model running mean of observed service times, seeded with optional priors.

    Unknown models predict ``default`` seconds (0 by default, so an untrained predictor makes
    SJF behave like FIFO rather than guess).
    """

    name = "mean"

    def __init__(self, priors: Mapping[str, float] | None = None, default: float = 0.0):
        self.default = default
        self._sum: dict[str, float] = {}
        self._n: dict[str, int] = {}
        for model, mean in (priors or {}).items():
            self._sum[model] = float(mean)
            self._n[model] = 1

    def predict(self, request: Request) -> float:
        n = self._n.get(request.model, 0)
        return self._sum[request.model] / n if n else self.default

    def observe(self, request: Request, runtime: float) -> None:
        self._sum[request.model] = self._sum.get(request.model, 0.0) + runtime
        self._n[request.model] = self._n.get(request.model, 0) + 1

    def means(self) -> dict[str, float]:
        return {m: self._sum[m] / n for m, n in self._n.items()}
