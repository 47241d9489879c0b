"""First come, first served."""

from __future__ import annotations

from servelab.core.policies.base import QueuePolicy
from servelab.core.requests import Request


class Fifo(QueuePolicy):
    """Serves requests in the order they were pushed (the entry counter is the only key)."""

    name = "fifo"

    def key(self, request: Request, now: float) -> int:
        return 0
