"""The request every stage shares, and the per-request record both drivers write.

Times are seconds from the start of a run (the simulator's clock, or the live driver's
monotonic clock minus its start), so simulated and live records compare column for column.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

STATUSES = ("ok", "rejected", "timeout", "error", "not_sent")
"""Every request ends in exactly one of these: served, refused (503 / full queue), past its
deadline (504), failed, or never sent (the generator fell behind its schedule)."""

RECORD_FIELDS: tuple[tuple[str, str], ...] = (
    ("request_id", "int64"),
    ("model", "string"),
    ("input_size", "int64"),
    ("priority", "int64"),  # -1 = no explicit priority
    ("intended_arrival", "float64"),
    ("enqueue", "float64"),
    ("start", "float64"),
    ("end", "float64"),
    ("status", "string"),
    ("worker", "int64"),  # -1 = never reached a worker
    ("batch_size", "int64"),
    ("queue_len_at_arrival", "int64"),
    ("config_id", "string"),
)
"""The shared per-request record schema (name, pandas/arrow dtype), in column order."""

RECORD_COLUMNS = tuple(name for name, _ in RECORD_FIELDS)


@dataclass(eq=False, slots=True)
class Request:
    """One inference request and its scheduling state.

    ``priority`` is an explicit priority class, lower = more urgent (the Triton / Cobham
    convention: class 0 before class 1); ``None`` lets the Priority policy derive one from the
    expected service time.  ``service_time`` is the true service time where it is known (the
    simulator draws it up front; live servers learn it afterwards) — only the oracle predictor
    may read it.
    """

    id: int
    model: str
    input_size: int = 0
    arrival: float = 0.0
    priority: int | None = None
    deadline: float | None = None
    service_time: float | None = None
    payload: Any = None
    # Filled in by the executor (simulator or live server).
    enqueue: float = math.nan
    start: float = math.nan
    end: float = math.nan
    status: str = ""
    worker: int = -1
    batch_size: int = 0
    queue_len_at_arrival: int = -1
    # Preemptive-scheduling state (MLFQ).
    executed: float = 0.0
    level: int = 0
    level_executed: float = 0.0
    stage: int = 0

    @property
    def latency(self) -> float:
        """End-to-end latency from the intended arrival (NaN until the request ends)."""
        return self.end - self.arrival

    @property
    def wait(self) -> float:
        """Time spent queued before first service."""
        return self.start - self.enqueue

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now > self.deadline

    def to_record(self, config_id: str = "") -> dict[str, Any]:
        return {
            "request_id": self.id,
            "model": self.model,
            "input_size": self.input_size,
            "priority": -1 if self.priority is None else self.priority,
            "intended_arrival": self.arrival,
            "enqueue": self.enqueue,
            "start": self.start,
            "end": self.end,
            "status": self.status,
            "worker": self.worker,
            "batch_size": self.batch_size,
            "queue_len_at_arrival": self.queue_len_at_arrival,
            "config_id": config_id,
        }
