"""Context-switch cost: pipe ping-pong between two threads or two processes.

Each round trip forces two switches (A blocks on read, B runs, writes, blocks; A runs).  A sample
is the mean time per switch over ``rounds`` round trips.  Between threads the figure includes the
GIL hand-off, which is exactly the cost a thread-pool server pays.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from collections.abc import Mapping
from typing import Any


def _pong(r: int, w: int, rounds: int) -> None:
    for _ in range(rounds):
        os.read(r, 1)
        os.write(w, b"y")


def _one(kind: str, rounds: int) -> float:
    a_r, a_w = os.pipe()
    b_r, b_w = os.pipe()
    if kind == "thread":
        peer: Any = threading.Thread(target=_pong, args=(a_r, b_w, rounds))
    else:
        peer = mp.get_context("fork").Process(target=_pong, args=(a_r, b_w, rounds))
    peer.start()
    t = time.perf_counter()
    for _ in range(rounds):
        os.write(a_w, b"x")
        os.read(b_r, 1)
    elapsed = time.perf_counter() - t
    peer.join()
    for fd in (a_r, a_w, b_r, b_w):
        os.close(fd)
    return elapsed / (2 * rounds)


def measure(params: Mapping[str, Any], warmups: int, samples: int) -> dict[str, Any]:
    kind = params.get("kind", "thread")
    if kind not in ("thread", "process"):
        raise ValueError(f"unknown kind {kind!r}; valid: thread, process")
    rounds = int(params.get("rounds", 2000))
    out = [_one(kind, rounds) for _ in range(warmups + samples)][warmups:]
    return {"samples": out, "kind": kind}
