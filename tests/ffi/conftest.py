from __future__ import annotations

import pytest

from servelab.ffi import kernels as K
from servelab.ffi._loader import KernelUnavailable


@pytest.fixture(autouse=True)
def _fresh_kernels():
    """Every test starts and ends with no cached kernels, builds or warnings."""
    K.reset()
    yield
    K.reset()


def c_kernels(name: str) -> K.Kernels:
    """The compiled kernels ``name``, or skip the test (no compiler on this machine)."""
    try:
        return K.get_kernels(name, strict=True)
    except KernelUnavailable as exc:
        pytest.skip(f"{name} not built here: {exc}")


@pytest.fixture
def kernels_for():
    """``kernels_for(name)``: the kernels ``name``; skips when a C build is not available."""
    return lambda name: c_kernels(name) if name.startswith("c-") else K.get_kernels(name)


@pytest.fixture(params=["c-release", "c-hold"])
def c_kind(request) -> str:
    c_kernels(request.param)
    return request.param


@pytest.fixture(scope="session")
def lstm_full():
    from servelab.servers.zoo import get_model

    model = get_model("lstm_forecaster", variant="full", seed=3)
    model.load()
    return model
