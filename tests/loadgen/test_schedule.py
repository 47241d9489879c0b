"""Schedules (rescaling, round-robin shares) and prebuilt request bodies."""

from __future__ import annotations

import json

import numpy as np
import pytest

from servelab.core.workload import WorkloadSpec
from servelab.loadgen.payloads import Payloads, Target, http_request
from servelab.loadgen.schedule import Schedule, prepare_spec
from servelab.servers.oip import HEADER_LENGTH, decode_request
from servelab.servers.zoo import get_model
from servelab.workloads import load_workload


def test_rate_override_rescales_the_mean_rate_and_keeps_the_shape() -> None:
    base = load_workload("bursty")
    spec = prepare_spec(base, rate=500.0, duration=20.0, seed=3, warmup_s=1.0)
    assert spec.mean_rate() == pytest.approx(500.0)
    assert spec.arrival.rate_high / spec.arrival.rate_low == pytest.approx(
        base.arrival.rate_high / base.arrival.rate_low
    )
    assert (spec.total_duration, spec.seed, spec.warmup_s) == (20.0, 3, 1.0)
    phased = prepare_spec(load_workload("shifting"), duration=6.0)
    assert phased.total_duration == pytest.approx(6.0)
    with pytest.raises(ValueError):
        prepare_spec(base, rate=0.0)


def test_shares_split_round_robin_and_keep_global_ids() -> None:
    s = Schedule.from_spec(prepare_spec(load_workload("mixed"), rate=200.0, duration=3.0))
    shares = [s.share(k, 3) for k in range(3)]
    ids = np.sort(np.concatenate([x.request_id for x in shares]))
    assert np.array_equal(ids, np.arange(len(s)))
    assert np.array_equal(shares[1].times, s.times[1::3])
    assert all(np.all(np.diff(x.times) >= 0) for x in shares)
    with pytest.raises(ValueError):
        s.share(3, 3)


def _split(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return lines[0], headers, body


@pytest.mark.parametrize("binary", [False, True])
def test_bodies_are_valid_oip_requests_with_priority_and_timeout(binary: bool) -> None:
    spec = prepare_spec(load_workload("mixed"), rate=100.0, duration=2.0)
    spec = WorkloadSpec.from_dict({**spec.to_dict(), "deadline_ms": {"distilbert": 2000}})
    s = Schedule.from_spec(spec)
    target = Target.parse("http://127.0.0.1:9/prefix/")
    p = Payloads.build(s, target, binary=binary)
    assert len(p.index) == len(s)
    assert len(p.requests) < len(s)  # bodies are shared between requests of the same shape
    names = s.model_names()
    for i in range(0, len(s), 7):
        line, headers, body = _split(p.requests[p.index[i]])
        assert line == f"POST /prefix/v2/models/{names[i]}/infer HTTP/1.1"
        assert int(headers["Content-Length"]) == len(body)
        model = get_model(str(names[i]), variant="tiny")
        hl = int(headers[HEADER_LENGTH]) if HEADER_LENGTH in headers else None
        req = decode_request(body, model.inputs, hl)
        assert model.input_size(req.inputs) == s.input_size[i]
        assert req.parameters["priority"] == s.priority[i]
        if names[i] == "distilbert":
            assert req.parameters["timeout_ms"] == pytest.approx(2000.0)
        else:
            assert "timeout_ms" not in req.parameters


def test_target_parsing() -> None:
    assert Target.parse("127.0.0.1:8000") == Target("127.0.0.1", 8000, "")
    assert Target.parse("http://localhost").port == 80
    with pytest.raises(ValueError):
        Target.parse("https://127.0.0.1:8000")
    raw = http_request(Target("h", 1), "/p", b"{}", {"Content-Type": "application/json"})
    assert raw.endswith(b"\r\n\r\n{}") and json.loads(_split(raw)[2]) == {}
