"""Find a current compiled build of the C kernels, or say why there is none.

Order, per build (``release`` / ``hold``):

1. the extension module installed with the package (``servelab.ffi._kernels_<build>``, built by
   ``pip install [-e] .`` through setup.py), if its embedded source hash matches ``kernels.c``;
2. a build compiled on first use into a per-user cache (``$SERVELAB_FFI_CACHE``, else
   ``$XDG_CACHE_HOME/servelab/ffi`` or ``~/.cache/servelab/ffi``), keyed by the source hash and
   guarded by a file lock so concurrent processes compile once.  This covers an install made
   without a compiler that has one now, and a ``kernels.c`` edited since the install.
   ``SERVELAB_FFI_JIT=0`` disables it.

When neither works :func:`load` raises :class:`KernelUnavailable`; :mod:`servelab.ffi.kernels`
turns that into the NumPy fallback with a warning.  ``SERVELAB_FFI=off`` pretends no compiled
build exists (to exercise the fallback).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

BUILDS = ("release", "hold")


class KernelUnavailable(RuntimeError):
    """No usable compiled build of the C kernels (the message says why)."""


@dataclass(frozen=True)
class CLib:
    """A loaded build: its cffi ``ffi`` and ``lib`` objects and where it came from."""

    build: str
    ffi: Any
    lib: Any
    origin: str  # "installed" or "cache"
    path: str


_cache: dict[str, CLib | KernelUnavailable] = {}
_cache_lock = threading.Lock()


def cache_dir() -> Path:
    env = os.environ.get("SERVELAB_FFI_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "servelab" / "ffi"


def expected_hash() -> str:
    from servelab.ffi import _build

    return _build.source_hash()


def _lib_hash(mod: Any) -> str:
    return mod.ffi.string(mod.lib.sl_source_hash()).decode()


def _import_installed(build: str) -> Any:
    return importlib.import_module(f"servelab.ffi._kernels_{build}")


@contextlib.contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock (the rename below is still atomic)
            yield
            return
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _load_file(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sys.modules[name] = mod
    return mod


def _compile_cached(build: str, digest: str) -> tuple[Any, Path]:
    from servelab.ffi import _build

    name = f"_servelab_kernels_{build}_{digest}"
    root = cache_dir() / f"py{sys.version_info[0]}{sys.version_info[1]}"
    with _file_lock(root / ".lock"):
        found = sorted(root.glob(f"{name}.*so")) + sorted(root.glob(f"{name}.*pyd"))
        if not found:
            log.info("compiling the %s build of the C kernels into %s", build, root)
            tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
            try:
                builder = _build.make_builder(build, module_name=name)
                built = Path(builder.compile(tmpdir=str(tmp), verbose=False))
                final = root / built.name
                os.replace(built, final)
                found = [final]
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return _load_file(name, found[0]), found[0]


def _load_uncached(build: str) -> CLib:
    if os.environ.get("SERVELAB_FFI", "").lower() in ("0", "off", "no", "false"):
        raise KernelUnavailable("compiled kernels disabled by SERVELAB_FFI=off")
    try:
        digest = expected_hash()
    except Exception as exc:  # cffi missing, or kernels.c not shipped
        raise KernelUnavailable(f"cannot read the kernel source or cffi: {exc}") from exc
    reasons = []
    try:
        mod = _import_installed(build)
        got = _lib_hash(mod)
        if got == digest:
            return CLib(build, mod.ffi, mod.lib, "installed", str(mod.__file__))
        reasons.append(f"installed build is stale (source hash {got}, expected {digest})")
    except ImportError as exc:
        reasons.append(f"no installed build ({exc})")
    if os.environ.get("SERVELAB_FFI_JIT", "1").lower() in ("0", "off", "no", "false"):
        reasons.append("compiling on first use disabled by SERVELAB_FFI_JIT=0")
        raise KernelUnavailable("; ".join(reasons))
    try:
        mod, path = _compile_cached(build, digest)
        return CLib(build, mod.ffi, mod.lib, "cache", str(path))
    except Exception as exc:  # no compiler, no headers, read-only cache ...
        reasons.append(f"compiling on first use failed: {type(exc).__name__}: {exc}")
        raise KernelUnavailable("; ".join(reasons)) from exc


def load(build: str) -> CLib:
    """The compiled ``build`` of the kernels; raises :class:`KernelUnavailable` (remembered:
    a failed attempt is not retried in this process until :func:`reset`)."""
    if build not in BUILDS:
        raise ValueError(f"unknown build {build!r}; valid: {', '.join(BUILDS)}")
    with _cache_lock:
        hit = _cache.get(build)
        if hit is None:
            try:
                hit = _load_uncached(build)
                log.debug("C kernels (%s build) from %s: %s", build, hit.origin, hit.path)
            except KernelUnavailable as exc:
                hit = exc
            _cache[build] = hit
    if isinstance(hit, KernelUnavailable):
        raise KernelUnavailable(str(hit))
    return hit


def reset() -> None:
    """Forget loaded builds and failures (tests)."""
    with _cache_lock:
        _cache.clear()
