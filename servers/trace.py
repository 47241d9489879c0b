"""The engine's per-request trace: a fixed-size ring of records, allocated at start.

A dict per record costs about 1.5 KB, so a trace of dicts grows a busy server by hundreds of
megabytes before its limit is reached — memory that looks like a leak in a soak.  Here every
column is a preallocated array, written (so its pages are resident) when the server starts:
the trace's memory is constant from the first request on.  Numeric columns are numpy arrays;
the few-valued strings (``model``, ``status``, ``config_id``) are small integer codes into a
table; free-form strings (``oip_id``, ``error``) are object slots, mostly the shared ``""`` /
``None``.  When full, the oldest records are overwritten (as the deque before it did).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from servelab.core.requests import RECORD_FIELDS

EXTRA_FIELDS: tuple[tuple[str, str], ...] = (
    ("cpu_util_at_arrival", "float64"),
    ("rows", "int64"),
    ("queue_s", "float64"),
    ("preprocess_s", "float64"),
    ("forward_s", "float64"),
    ("postprocess_s", "float64"),
    ("compute_s", "float64"),
    ("lock_wait_s", "float64"),
    ("ipc_s", "float64"),
    ("preemptions", "int64"),
    ("oip_id", "object"),
    ("error", "object"),
)
"""The live server's columns beyond the shared record schema."""

FIELDS = RECORD_FIELDS + EXTRA_FIELDS


class TraceBuffer:
    """The last ``capacity`` records (the shared schema plus :data:`EXTRA_FIELDS`)."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"trace capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.total = 0  # records ever appended
        self._cols: dict[str, np.ndarray] = {}
        self._codes: dict[str, dict[str, int]] = {}
        self._names: dict[str, list[str]] = {}
        for name, dtype in FIELDS:
            if dtype == "float64":
                self._cols[name] = np.full(capacity, np.nan)  # np.full writes every page
            elif dtype == "int64":
                self._cols[name] = np.full(capacity, -1, dtype=np.int64)
            elif dtype == "string":
                self._cols[name] = np.full(capacity, -1, dtype=np.int32)
                self._codes[name], self._names[name] = {}, []
            else:
                self._cols[name] = np.full(capacity, None, dtype=object)

    def __len__(self) -> int:
        return min(self.total, self.capacity)

    def append(self, rec: Mapping[str, Any]) -> None:
        """Store one record (every field of :data:`FIELDS`; a missing one is an error)."""
        slot = self.total % self.capacity
        for name, col in self._cols.items():
            value = rec[name]
            codes = self._codes.get(name)
            if codes is not None:
                code = codes.get(value)
                if code is None:
                    code = codes[value] = len(self._names[name])
                    self._names[name].append(value)
                col[slot] = code
            else:
                col[slot] = value
        self.total += 1

    def _order(self) -> np.ndarray:
        n = len(self)
        if self.total <= self.capacity:
            return np.arange(n)
        start = self.total % self.capacity
        return np.concatenate([np.arange(start, self.capacity), np.arange(start)])

    def columns(self) -> dict[str, np.ndarray]:
        """Each column, oldest record first (strings decoded)."""
        idx = self._order()
        out = {}
        for name, col in self._cols.items():
            names = self._names.get(name)
            out[name] = col[idx] if names is None else np.asarray(names, dtype=object)[col[idx]]
        return out

    def records(self) -> list[dict[str, Any]]:
        """The records as dicts, oldest first (plain Python values, JSON-ready)."""
        cols = {k: v.tolist() for k, v in self.columns().items()}
        names = list(cols)
        return [dict(zip(names, row, strict=True)) for row in zip(*cols.values(), strict=True)]
