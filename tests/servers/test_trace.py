"""The engine's trace ring: order, wrap-around, decoded strings, and constant memory."""

from __future__ import annotations

import math
import tracemalloc

import pytest

from servelab.core.requests import Request
from servelab.servers.trace import FIELDS, TraceBuffer


def _rec(i: int, model: str = "m", status: str = "ok", error: str | None = None) -> dict:
    r = Request(id=i, model=model, input_size=i % 7, arrival=i * 0.01)
    r.enqueue, r.start, r.end, r.status, r.worker, r.batch_size = (
        i * 0.01, i * 0.01 + 0.001, i * 0.01 + 0.005, status, i % 2, 1)
    rec = r.to_record("cfg-a")
    rec.update(cpu_util_at_arrival=None, oip_id="", rows=1, queue_s=0.001, preprocess_s=0.0,
               forward_s=0.004, postprocess_s=0.0, compute_s=0.004, lock_wait_s=0.0, ipc_s=0.0,
               preemptions=0, error=error)
    return rec


def test_records_come_back_as_written_oldest_first() -> None:
    buf = TraceBuffer(8)
    recs = [_rec(i, model=("a", "b")[i % 2], status=("ok", "error")[i == 2],
                 error="boom" if i == 2 else None) for i in range(5)]
    for r in recs:
        buf.append(r)
    out = buf.records()
    assert len(buf) == 5 and [set(o) for o in out] == [{n for n, _ in FIELDS}] * 5
    for o, r in zip(out, recs, strict=True):
        assert math.isnan(o.pop("cpu_util_at_arrival"))  # None is stored as NaN
        r.pop("cpu_util_at_arrival")
        assert o == r


def test_a_full_ring_keeps_the_newest_records_in_order() -> None:
    buf = TraceBuffer(4)
    for i in range(10):
        buf.append(_rec(i))
    assert len(buf) == 4 and buf.total == 10
    assert [r["request_id"] for r in buf.records()] == [6, 7, 8, 9]
    assert list(buf.columns()["request_id"]) == [6, 7, 8, 9]
    assert TraceBuffer(3).records() == [] and len(TraceBuffer(3).columns()["model"]) == 0


def test_memory_is_allocated_up_front_not_per_record() -> None:
    """10,000 records as dicts would hold ~15 MB; the ring holds none of it."""
    buf = TraceBuffer(10_000)
    recs = (_rec(i, model=("a", "b", "c")[i % 3]) for i in range(10_000))
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for r in recs:
        buf.append(r)
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert grown < 200_000, grown


def test_a_record_missing_a_field_is_refused_and_capacity_must_be_positive() -> None:
    buf = TraceBuffer(2)
    rec = _rec(0)
    del rec["forward_s"]
    with pytest.raises(KeyError):
        buf.append(rec)
    with pytest.raises(ValueError, match="capacity"):
        TraceBuffer(0)
