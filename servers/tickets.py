"""What a request carries through a live engine: its :class:`Ticket` (rows in, outputs or an
error out, the outcome, a completion event and callbacks), the :class:`LiveBatch` it runs in
(the scheduling core's batch plus the executors' state), and the outcomes a request can end
with (:data:`OUTCOMES`; the API layer maps them to HTTP statuses, ``servers.api.HTTP_FOR``).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from servelab.core.scheduling import Batch
from servelab.servers.zoo.base import Inputs, StageTimes

log = logging.getLogger(__name__)

OUTCOMES = ("ok", "rejected", "timeout", "bad_input", "error", "unavailable")
"""How a request ended, as the engine sees it (the API layer turns each into an HTTP status,
``servers.api.HTTP_FOR``): ``rejected`` at admission (queue full, draining), ``timeout`` its
deadline passed, ``bad_input`` the model refused its inputs, ``error`` inference failed,
``unavailable`` no worker could run it (a worker down, the server closing)."""


class ServeError(Exception):
    """A request the engine refuses at admission: ``outcome`` is ``rejected`` (queue full,
    draining: retry after ``retry_after`` seconds) or ``timeout`` (its deadline cannot be met)."""

    def __init__(self, message: str, outcome: str, retry_after: int | None = None):
        super().__init__(message)
        self.outcome = outcome
        self.retry_after = retry_after


@dataclass(eq=False)
class Ticket:
    """A request's rows, and the place its answer arrives (``Request.payload``)."""

    rows: list[Inputs]
    oip_id: str | None = None
    cpu_util: float = math.nan
    outputs: Inputs | None = None
    error: str = ""
    outcome: str = ""  # one of OUTCOMES once answered
    retry_after: int | None = None
    extra: dict[str, float] = field(default_factory=dict)
    _event: threading.Event = field(default_factory=threading.Event)
    _callbacks: list[Callable[[Ticket], None]] = field(default_factory=list)
    _cb_lock: threading.Lock = field(default_factory=threading.Lock)
    _fired: bool = False

    @property
    def done(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)

    def add_done_callback(self, fn: Callable[[Ticket], None]) -> None:
        """Call ``fn(ticket)`` when done (at once if it already is), from the completing thread."""
        with self._cb_lock:
            if not self._fired:
                self._callbacks.append(fn)
                return
        fn(self)

    def _fire(self) -> None:
        with self._cb_lock:
            self._fired = True
            callbacks, self._callbacks = self._callbacks, []
        self._event.set()
        for fn in callbacks:
            try:
                fn(self)
            except Exception:  # pragma: no cover - a callback must not break the engine
                log.exception("ticket callback failed")


@dataclass(eq=False)
class LiveBatch(Batch):
    """A :class:`~servelab.core.scheduling.Batch` with the live executors' state: where a
    preempted batch stands (``batch``, next ``stage``, ``state``; ``work`` is the executor's own
    object for it when the executor lives in this process) and what it cost."""

    work: Any = None
    batch: Any = None
    stage: int = 0
    state: Any = None
    times: StageTimes = field(default_factory=StageTimes)
    lock_wait: float = 0.0
    ipc: float = 0.0
    thread: int = 0  # ident of the in-process thread running it (the watchdog's key)

    @property
    def started(self) -> bool:
        return self.work is not None or self.batch is not None

    def rows(self) -> list[Inputs]:
        return [row for r in self.requests for row in r.payload.rows]

    @property
    def n_rows(self) -> int:
        return sum(len(r.payload.rows) for r in self.requests)
