"""The worker template process of the process pool ("zygote"), and the worker loop.

The server starts this module as a fresh interpreter (``python -m servelab.servers.zygote FD``).
It loads the models ONCE, with torch limited to one thread (so no OpenMP pool exists: GNU
OpenMP hangs in a child forked after its pool started), freezes the garbage collector's view of
the heap (``gc.freeze``, so collections in the workers do not dirty the shared pages), and then
forks a worker whenever the server asks — at start, and again whenever a worker dies.  Every
worker therefore shares the model weights copy-on-write with the zygote and with each other, and
a replacement is a ``fork()`` away (milliseconds), not an interpreter start plus a model load.

Forking from a dedicated single-threaded process, rather than from the server itself, keeps the
workers clear of the server's threads, locks and sockets (its listening socket, open client
connections and other workers' pipes would otherwise leak into every child).

Control socket (``AF_UNIX``/``SOCK_SEQPACKET``, one JSON message per packet): the server sends
the spec, the zygote answers ``{"ready": pid}``; then each ``{"spawn": i}`` packet carries the
worker's end of its socket pair as ``SCM_RIGHTS`` and is answered ``{"pid": ...}``.  EOF on the
control socket (the server exited or died) ends the zygote; EOF on a worker's socket ends that
worker.

Signals: the zygote and its workers ignore SIGINT and SIGTERM — the server coordinates shutdown
(drain, then ``exit`` to idle workers and EOF on every socket), so a SIGTERM sent to the whole
process group (a terminal, ``systemd``'s default ``KillMode=control-group``) drains instead of
killing the workers under the requests they hold.

Test hook (never set in production): with the environment variable
:data:`POISON_ENV` set to a number of seconds, a ``sleep`` request for exactly that long kills
the worker that takes it (SIGKILL, as the OOM killer would) — a "poison" request for the
pool's retry tests.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import socket
import sys
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

from servelab.servers.ipc import Arena, dumps, loads

log = logging.getLogger(__name__)

INPUT_ERRORS = (ValueError, TypeError, KeyError, UnicodeDecodeError)
POISON_ENV = "SERVELAB_TEST_POISON_SECONDS"
"""Test-only: a ``sleep`` request of this many seconds kills its worker (see the docstring)."""


def _poison_seconds() -> float | None:
    value = os.environ.get(POISON_ENV)
    return float(value) if value else None


def _is_poison(poison: float | None, name: str, rows: Any) -> bool:
    if poison is None or name != "sleep" or not rows:
        return False
    import numpy as np

    return any(np.isclose(np.asarray(r.get("seconds", -1.0), dtype=np.float64).reshape(-1)[:1],
                          poison, rtol=1e-6, atol=0).any() for r in rows)


def send_json(sock: socket.socket, obj: Any, fds: list[int] | None = None) -> None:
    data = json.dumps(obj).encode()
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.send(data)


def recv_json(sock: socket.socket, maxfds: int = 0) -> tuple[Any, list[int]]:
    """One packet: (decoded JSON, received fds).  EOFError when the peer is gone."""
    if maxfds:
        data, fds, _, _ = socket.recv_fds(sock, 1 << 16, maxfds)
    else:
        data, fds = sock.recv(1 << 16), []
    if not data:
        raise EOFError("control socket closed")
    return json.loads(data), list(fds)


# -- the worker ----------------------------------------------------------------------------------
def worker_main(index: int, conn: Connection, arena_in: Arena, arena_out: Arena,
                models: dict[str, Any], intra_op_threads: int) -> None:
    """Serve jobs from the server until it closes our socket.

    Messages in: ``("run", model, n_rows, rows | None, batch, stage, state, preemptive)``,
    ``("ping",)``, ``("exit",)``.  Out: ``("stage", seconds)`` after each stage when
    ``preemptive`` (answered ``b"go"`` or ``b"stop"``), then ``("done", rows_out, times, busy)``,
    ``("preempted", batch, stage, state, times, busy)`` or ``("error", status, message, busy)``.
    """
    import torch

    from servelab.servers.runner import Work

    torch.set_num_threads(intra_op_threads)
    poison = _poison_seconds()
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        msg = loads(data, arena_in)
        kind = msg[0]
        if kind == "exit":
            return
        if kind == "ping":
            conn.send_bytes(dumps(("pong", os.getpid())))
            continue
        _, name, n, rows, batch, stage, state, preemptive = msg
        if _is_poison(poison, name, rows):
            os.kill(os.getpid(), signal.SIGKILL)
        busy = 0.0
        t0 = time.perf_counter()
        reply: tuple[Any, ...]
        try:
            work = Work(models[name], rows=rows, batch=batch, stage=stage, state=state)
            work.n = n
            try:
                work.prepare()
            except INPUT_ERRORS as exc:
                busy += time.perf_counter() - t0
                conn.send_bytes(dumps(("error", 400, f"bad input for {name}: "
                                       f"{type(exc).__name__}: {exc}", busy)))
                continue
            stopped = False
            while not work.done:
                ran = work.step()
                if preemptive and not work.done:
                    busy += time.perf_counter() - t0
                    conn.send_bytes(dumps(("stage", ran)))
                    answer = conn.recv_bytes()
                    t0 = time.perf_counter()
                    if answer == b"stop":
                        stopped = True
                        break
            times = (work.times.preprocess, work.times.forward, work.times.postprocess)
            if stopped:
                busy += time.perf_counter() - t0
                reply = ("preempted", work.batch, work.stage, work.state, times, busy)
            else:
                out = work.outputs(n)
                times = (work.times.preprocess, work.times.forward, work.times.postprocess)
                busy += time.perf_counter() - t0
                reply = ("done", out, times, busy)
        except (EOFError, OSError):
            return
        except Exception as exc:
            traceback.print_exc()
            busy += time.perf_counter() - t0
            reply = ("error", 500, f"{type(exc).__name__}: {exc}", busy)
        conn.send_bytes(dumps(reply, arena_out))


# -- the zygote ----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s zygote: %(message)s")
    ctl = socket.socket(fileno=int(argv[0]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server coordinates shutdown
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # (workers inherit both)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps dead workers
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    spec, _ = recv_json(ctl)

    import torch

    from servelab.servers.models import get_servables

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    models = get_servables(spec["models"], spec["variant"], spec.get("weights_dir"), spec["seed"],
                           spec.get("kernel", "torch"))
    for m in models.values():
        m.load()
    arenas = [(Arena.attach(a), Arena.attach(b)) for a, b in spec["arenas"]]
    gc.collect()
    gc.freeze()
    send_json(ctl, {"ready": os.getpid(), "load_s": time.perf_counter() - t0})
    while True:
        try:
            msg, fds = recv_json(ctl, maxfds=1)
        except (EOFError, OSError, ConnectionError):
            return 0
        if "spawn" not in msg or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            send_json(ctl, {"error": f"bad command {msg!r}"})
            continue
        i = int(msg["spawn"])
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                ctl.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.nice(int(spec.get("nice", 0)))  # below the front end (ServeOptions)
                worker_main(i, Connection(fds[0]), arenas[i][0], arenas[i][1], models,
                            spec["intra_op_threads"])
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        os.close(fds[0])
        send_json(ctl, {"pid": pid})


if __name__ == "__main__":
    from servelab.cli import exit_now  # skip the interpreter teardown (seconds with torch)

    exit_now(main())
