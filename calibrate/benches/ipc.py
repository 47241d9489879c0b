"""IPC cost: one-way transfer time of a payload between two processes, by mechanism.

Mechanisms: ``pipe`` (multiprocessing.Pipe, bytes), ``queue`` (multiprocessing.Queue, bytes)
and ``shm`` (the payload written into a ``multiprocessing.shared_memory`` block, only its name
and size sent over a pipe, the reader copying it out).  A sample is half a round trip: the child
echoes a small acknowledgement, so the figure is the one-way cost a server pays per request.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Mapping
from multiprocessing import resource_tracker, shared_memory
from typing import Any


def _echo(method: str, conn: Any, queue_in: Any, queue_out: Any) -> None:
    while True:
        if method == "queue":
            msg = queue_in.get()
        else:
            msg = conn.recv_bytes() if method == "pipe" else conn.recv()
        if msg in (b"", None):
            return
        if method == "shm":
            name, size = msg
            block = shared_memory.SharedMemory(name=name)
            view = block.buf
            assert view is not None
            bytes(view[:size])  # the reader's copy
            block.close()
            # The forked reader shares the writer's resource tracker (started before the
            # fork), where attaching registered the name a second time (a no-op); the
            # writer's unlink unregisters it once.  (Unregistering here as well made the
            # tracker raise KeyError whenever it was already running at the fork.)
        if method == "queue":
            queue_out.put(b"k")
        else:
            conn.send_bytes(b"k") if method == "pipe" else conn.send(b"k")


def measure(params: Mapping[str, Any], warmups: int, samples: int) -> dict[str, Any]:
    method = params.get("method", "pipe")
    size = int(params.get("bytes", 1024))
    if method not in ("pipe", "queue", "shm"):
        raise ValueError(f"unknown IPC method {method!r}; valid: pipe, queue, shm")
    ctx = mp.get_context("fork")
    resource_tracker.ensure_running()  # one tracker, shared with the forked reader
    parent, child = ctx.Pipe()
    q_in, q_out = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=_echo, args=(method, child, q_in, q_out), daemon=True)
    proc.start()
    payload = b"x" * size
    block = shared_memory.SharedMemory(create=True, size=max(size, 1)) if method == "shm" else None
    out = []
    try:
        for i in range(warmups + samples):
            t = time.perf_counter()
            if method == "pipe":
                parent.send_bytes(payload)
                parent.recv_bytes()
            elif method == "queue":
                q_in.put(payload)
                q_out.get()
            else:
                assert block is not None and block.buf is not None
                block.buf[:size] = payload
                parent.send((block.name, size))
                parent.recv()
            if i >= warmups:
                out.append((time.perf_counter() - t) / 2)
    finally:
        if method == "queue":
            q_in.put(None)
        else:
            parent.send_bytes(b"") if method == "pipe" else parent.send(None)
        proc.join(5)
        if block is not None:
            block.close()
            block.unlink()
    return {"samples": out, "bytes": size, "method": method}
