"""Shortest (predicted) job first, non-preemptive."""

from __future__ import annotations

from servelab.core.policies.base import QueuePolicy
from servelab.core.predictor import MeanPredictor, RuntimePredictor
from servelab.core.requests import Request


class Sjf(QueuePolicy):
    """Serves the request with the least predicted service time first.

    The prediction is made once, when the request enters the queue.  ``predictor`` is any
    :class:`RuntimePredictor` (oracle, per-model mean, or the learned one).
    """

    name = "sjf"
    uses_predictor = True

    def __init__(self, predictor: RuntimePredictor | None = None):
        super().__init__()
        self.predictor = predictor if predictor is not None else MeanPredictor()

    def key(self, request: Request, now: float) -> float:
        return self.predictor.predict(request)
