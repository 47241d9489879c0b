"""Non-preemptive priority classes."""

from __future__ import annotations

from servelab.core.policies.base import QueuePolicy
from servelab.core.predictor import MeanPredictor, RuntimePredictor
from servelab.core.requests import Request


class Priority(QueuePolicy):
    """Serves the most urgent class first, FIFO within a class.

    A request's class is its explicit ``priority`` (lower = more urgent); a request without
    one gets ``default_priority``.  Within a class, requests are ordered by the expected service
    time of their kind (``predictor``, by default the per-model mean) — i.e. by priority
    1/E[S] — and then first come, first served.  With no predictor data that second key is 0
    for everyone and the policy is exactly class-priority FIFO (Cobham's model).
    """

    name = "priority"
    uses_predictor = True

    def __init__(self, predictor: RuntimePredictor | None = None, default_priority: int = 0):
        super().__init__()
        self.predictor = predictor if predictor is not None else MeanPredictor()
        self.default_priority = default_priority

    def key(self, request: Request, now: float) -> tuple[int, float]:
        cls = self.default_priority if request.priority is None else request.priority
        return (cls, self.predictor.predict(request))
