"""Messages between a server and its own worker processes: pickle for the structure, a
``multiprocessing.shared_memory`` arena for large tensors.

Each worker slot has two arenas (server -> worker, worker -> server).  The protocol is strictly
alternating (the server sends a job, the worker answers; only then does the server send again),
so an arena has one writer at a time and the reader copies a tensor out before the writer can
reuse the space.  Arrays and torch tensors of at least ``threshold`` bytes are placed in the
arena and travel as (offset, dtype, shape); smaller ones, or ones that do not fit, travel inline
as raw bytes.  Torch tensors always go through this path (as numpy), which also handles tensors
created under ``torch.inference_mode()``.

These pickles only ever cross private socket pairs between a server and the workers it forked:
nothing that arrives from the network is unpickled (the HTTP layer decodes JSON and raw tensor
bytes with explicit dtypes, see :mod:`servelab.servers.oip`).
"""

from __future__ import annotations

import io
import math
import pickle
import sys
from multiprocessing import shared_memory
from typing import Any, cast

import numpy as np

ARENA_BYTES = 64 << 20
THRESHOLD = 16 << 10


class Arena:
    """A fixed shared-memory segment, filled from offset 0 by each message."""

    def __init__(self, shm: shared_memory.SharedMemory, owner: bool):
        self.shm = shm
        self.owner = owner
        self.size = shm.size

    @classmethod
    def create(cls, size: int = ARENA_BYTES) -> Arena:
        return cls(shared_memory.SharedMemory(create=True, size=size), owner=True)

    @classmethod
    def attach(cls, name: str) -> Arena:
        shm = shared_memory.SharedMemory(name=name)
        # Python < 3.13 registers attached segments with the resource tracker too, which would
        # unlink them when this (non-owning) process exits.
        try:
            from multiprocessing import resource_tracker

            resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]
        except Exception:  # pragma: no cover
            pass
        return cls(shm, owner=False)

    @property
    def name(self) -> str:
        return self.shm.name

    def close(self) -> None:
        try:
            self.shm.close()
        except BufferError:  # pragma: no cover - a view still alive; the OS frees it at exit
            return
        if self.owner:
            try:
                self.shm.unlink()
            except FileNotFoundError:
                pass


def _torch() -> Any:
    return sys.modules.get("torch")


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, arena: Arena | None, threshold: int):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.arena = arena
        self.threshold = threshold
        self.offset = 0
        self.arena_bytes = 0

    def _place(self, arr: np.ndarray, tensor: bool) -> tuple[Any, ...]:
        arr = np.ascontiguousarray(arr)
        n = arr.nbytes
        shape = tuple(arr.shape)
        if self.arena is not None and n >= self.threshold and self.offset + n <= self.arena.size:
            off = self.offset
            dst = np.ndarray(shape, dtype=arr.dtype, buffer=self.arena.shm.buf, offset=off)
            dst[...] = arr
            del dst
            self.offset += -(-n // 64) * 64  # keep 64-byte alignment
            self.arena_bytes += n
            return ("shm", off, arr.dtype.str, shape, tensor)
        return ("raw", arr.tobytes(), arr.dtype.str, shape, tensor)

    def persistent_id(self, obj: Any) -> Any:
        torch = _torch()
        if torch is not None and isinstance(obj, torch.Tensor):
            t = obj.detach()
            if t.device.type != "cpu":  # pragma: no cover - CPU-only servers
                t = t.cpu()
            try:
                arr = t.numpy()
            except (TypeError, RuntimeError):  # e.g. bfloat16: no numpy dtype
                return None
            return self._place(arr, True)
        if isinstance(obj, np.ndarray) and obj.dtype != object and obj.nbytes >= self.threshold:
            return self._place(obj, False)
        return None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, arena: Arena | None):
        super().__init__(file)
        self.arena = arena

    def persistent_load(self, pid: Any) -> Any:
        kind, where, dtype, shape, tensor = pid
        count = math.prod(shape)
        if kind == "shm":
            if self.arena is None:
                raise pickle.UnpicklingError("message refers to an arena this side does not have")
            view = np.frombuffer(cast(memoryview, self.arena.shm.buf), dtype=dtype, count=count,
                                 offset=where)
            arr = view.reshape(shape).copy()
            del view
        elif kind == "raw":
            arr = np.frombuffer(where, dtype=dtype, count=count).reshape(shape).copy()
        else:
            raise pickle.UnpicklingError(f"unknown persistent id kind {kind!r}")
        if tensor:
            torch = _torch()
            if torch is None:
                import torch
            return torch.from_numpy(arr)
        return arr


def dumps(obj: Any, arena: Arena | None = None, threshold: int = THRESHOLD) -> bytes:
    """Pickle ``obj``, placing large arrays/tensors in ``arena``."""
    buf = io.BytesIO()
    _Pickler(buf, arena, threshold).dump(obj)
    return buf.getvalue()


def loads(data: bytes, arena: Arena | None = None) -> Any:
    """Unpickle a :func:`dumps` message (copying arena tensors out)."""
    return _Unpickler(io.BytesIO(data), arena).load()
