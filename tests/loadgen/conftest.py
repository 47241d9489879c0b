"""Fixtures for the load generator tests: a stub OIP server in its own process, small workloads.

Everything binds 127.0.0.1; runs are short (a few seconds) and bounded in request count.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from servelab.core.workload import WorkloadSpec
from servelab.loadgen.stub import StubProcess


@pytest.fixture(scope="session")
def stub() -> Iterator[StubProcess]:
    """One stub server process for the session; tests reconfigure it (which resets it)."""
    with StubProcess() as s:
        yield s


@pytest.fixture
def fresh_stub(stub: StubProcess) -> StubProcess:
    stub.configure(delay_ms=0.0, status=200, reject_every=0, capacity=0, stall_at=-1.0, stall_s=0.0,
                   mode="normal", models="")
    return stub


def spec(rate: float, duration: float, kind: str = "constant", **extra: Any) -> WorkloadSpec:
    """A one-model workload (MobileNetV2 inputs: fixed 32x32 images)."""
    data: dict[str, Any] = {
        "name": f"test-{kind}", "duration": duration, "arrival": {"kind": kind, "rate": rate},
        "mix": {"mobilenet_v2": 1.0}, "seed": 7,
    }
    data.update(extra)
    return WorkloadSpec.from_dict(data)
