"""cffi build script: the kernels of ``kernels.c`` as two API-mode extension modules.

``_kernels_release`` and ``_kernels_hold`` compile the same C text; the hold build adds
``-DSERVELAB_HOLD_GIL`` (each function re-acquires the GIL for its whole body).  Both embed a hash
of the C source, so the loader can tell a stale build from a current one.

Used in two ways:

* at install time, by ``setup.py`` (``cffi_modules=["ffi/_build.py:release", ...]`` names the
  functions below, which return the builders): ``pip install [-e] .`` builds the extensions,
  marked optional so that a machine without a compiler still installs (the loader then falls
  back, with a warning);
* at run time, by :mod:`servelab.ffi._loader`, to compile into a per-user cache when the installed
  build is missing or stale.

This file must not import ``servelab`` (setup.py executes it before the package is installed).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cffi import FFI

BUILDS = ("release", "hold")
SOURCE_PATH = Path(__file__).resolve().with_name("kernels.c")

CDEF = """
int sl_holds_gil(void);
const char *sl_source_hash(void);
int sl_preprocess_images(const uint8_t *src, float *dst, int64_t n, int64_t h, int64_t w,
                         int64_t c, const float *mean, const float *std);
int64_t sl_lstm_param_count(int64_t input_size, int64_t hidden, int64_t layers,
                            int64_t out_features);
int sl_lstm_run(const float *params, int64_t input_size, int64_t hidden, int64_t layers,
                int64_t out_features, const float *x, int64_t batch, int64_t steps, float *h,
                float *c, int with_head, float *out);
"""

COMPILE_ARGS = ["-O3", "-fno-strict-aliasing", "-fno-trapping-math"]


def source_text() -> str:
    return SOURCE_PATH.read_text()


def source_hash(text: str | None = None) -> str:
    """A short hash of the C source, the cdef and the compile flags (identifies a build)."""
    h = hashlib.sha256()
    for part in (source_text() if text is None else text, CDEF, " ".join(COMPILE_ARGS)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def make_builder(build: str, module_name: str | None = None, optional: bool = False) -> FFI:
    """An FFI builder for one build (``release`` or ``hold``) of the kernels.

    ``module_name`` defaults to the in-package name ``servelab.ffi._kernels_<build>``.
    ``optional`` marks the setuptools extension optional (a compile error is a warning).
    """
    if build not in BUILDS:
        raise ValueError(f"unknown build {build!r}; valid: {', '.join(BUILDS)}")
    text = source_text()
    macros = [("SERVELAB_SOURCE_HASH", f'"{source_hash(text)}"')]
    if build == "hold":
        macros.append(("SERVELAB_HOLD_GIL", "1"))
    ffibuilder = FFI()
    ffibuilder.cdef(CDEF)
    kwargs: dict = {}
    if optional:
        kwargs["optional"] = True
    ffibuilder.set_source(
        module_name or f"servelab.ffi._kernels_{build}",
        text,
        define_macros=macros,
        extra_compile_args=COMPILE_ARGS,
        libraries=["m"],
        **kwargs,
    )
    return ffibuilder


def release() -> FFI:
    """The release build, for setup.py's ``cffi_modules`` (which calls it)."""
    return make_builder("release", optional=True)


def hold() -> FFI:
    """The hold build, for setup.py's ``cffi_modules``."""
    return make_builder("hold", optional=True)

