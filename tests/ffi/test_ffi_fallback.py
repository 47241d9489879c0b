"""Without a compiled module the C kernels fall back to NumPy, with a warning; the loader finds,
rejects and rebuilds builds as documented."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from servelab.ffi import LstmWeights, _build, _loader, get_kernels
from servelab.ffi.kernels import PythonKernels
from servelab.servers.kernel_models import apply_kernel


def _no_installed(build):
    raise ImportError(f"No module named 'servelab.ffi._kernels_{build}' (monkeypatched)")


@pytest.fixture
def no_compiled(monkeypatch):
    """The compiled modules are absent and compiling on first use is disabled."""
    monkeypatch.setattr(_loader, "_import_installed", _no_installed)
    monkeypatch.setenv("SERVELAB_FFI_JIT", "0")


@pytest.mark.parametrize("kind", ["c-release", "c-hold"])
def test_fallback_to_numpy_with_warning(kind, no_compiled, caplog, lstm_full):
    with caplog.at_level(logging.WARNING, logger="servelab.ffi.kernels"):
        k = get_kernels(kind)
        get_kernels(kind)
    assert isinstance(k, PythonKernels)
    assert k.name == "python" and k.requested == kind
    warnings = [r for r in caplog.records if "falling back" in r.getMessage()]
    assert len(warnings) == 1 and kind in warnings[0].getMessage()
    # The fallback computes the same thing.
    w = LstmWeights.from_module(lstm_full.load())
    x = np.random.default_rng(0).standard_normal((2, 50, 7)).astype(np.float32)
    ref = get_kernels("torch").lstm_forward(w, x)
    assert np.abs(k.lstm_forward(w, x) - ref).max() <= 1e-4
    # ... and the servers' hook still serves.
    served = apply_kernel(lstm_full, kind)
    reqs = [lstm_full.make_input(None, np.random.default_rng(1))]
    got, want = served.infer(reqs), lstm_full.infer(reqs)
    assert np.abs(got[0]["forecast"] - want[0]["forecast"]).max() <= 1e-3


def test_strict_raises(no_compiled):
    with pytest.raises(_loader.KernelUnavailable, match="no installed build"):
        get_kernels("c-release", strict=True)
    with pytest.raises(_loader.KernelUnavailable):
        apply_kernel(__import__("servelab.servers.zoo", fromlist=["x"]).get_model(
            "lstm_forecaster", variant="tiny"), "c-hold", strict=True)


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv("SERVELAB_FFI", "off")
    assert get_kernels("c-release").name == "python"


def test_stale_installed_build_is_not_used(monkeypatch):
    monkeypatch.setattr(_loader, "expected_hash", lambda: "0000000000000000")
    monkeypatch.setenv("SERVELAB_FFI_JIT", "0")
    with pytest.raises(_loader.KernelUnavailable, match="stale|no installed build"):
        _loader.load("release")


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="no C compiler")
def test_compiles_into_cache_when_not_installed(monkeypatch, tmp_path, kernels_for):
    monkeypatch.setattr(_loader, "_import_installed", _no_installed)
    monkeypatch.setenv("SERVELAB_FFI_CACHE", str(tmp_path))
    k = get_kernels("c-hold", strict=True)
    assert k.clib.origin == "cache" and k.releases_gil is False
    assert str(tmp_path) in k.clib.path
    x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    assert np.array_equal(k.preprocess_images(x), get_kernels("python").preprocess_images(x))
    # A second process (here: after a reset) reuses the cached build without compiling.
    files = sorted(p.name for p in tmp_path.rglob("*.so"))
    _loader.reset()
    assert _loader.load("hold").path == k.clib.path
    assert sorted(p.name for p in tmp_path.rglob("*.so")) == files


def test_setup_builders_are_optional_extensions():
    """setup.py's cffi_modules name functions that return builders of the in-package modules,
    marked optional (a failed compile must not fail ``pip install``)."""
    for build, fn in (("release", _build.release), ("hold", _build.hold)):
        ffi = fn()
        name, _source, _ext, kwds = ffi._assigned_source
        assert name == f"servelab.ffi._kernels_{build}"
        assert kwds["optional"] is True
        macros = dict(kwds["define_macros"])
        assert ("SERVELAB_HOLD_GIL" in macros) == (build == "hold")


def test_the_models_a_kernel_changes_are_the_ones_the_simulator_swaps():
    from servelab.core.config import KERNEL_MODELS
    from servelab.servers.kernel_models import _WRAPPERS
    from servelab.servers.zoo import get_model

    changed = {name for name in ("mobilenet_v2", "distilbert", "lstm_forecaster")
               if any(isinstance(get_model(name, variant="tiny"), b) for b in _WRAPPERS)}
    assert changed == set(KERNEL_MODELS)
