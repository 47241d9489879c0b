"""The process-pool executor: N worker processes forked from a model-holding zygote, each
driven by one dispatcher thread in the server.

Dispatcher ``i`` takes a job from the shared engine (so the queue policy, batching, deadlines and
admission are exactly the in-process ones), sends it to worker ``i`` over a private socket pair
(large tensors through that worker's shared-memory arena, :mod:`servelab.servers.ipc`), and
waits for the answer.  Under a preemptive policy the worker reports after every stage and the
dispatcher asks the engine (``policy.on_run``) whether to stop there; a stopped batch comes
back as ``(batch, stage, state)`` and may resume in any worker.

Faults: a worker that dies (SIGKILL, OOM, crash) shows up as EOF on its socket — at once when
it held a job, within ``LIVENESS_S`` when idle.  The dispatcher asks the zygote for a
replacement (a ``fork()``, milliseconds) and retries the job it held there once, from its
inputs (inference is idempotent): a batch of several requests is retried request by request, so
that a request that kills its worker (a "poison" input) dies alone.  A request whose retry dies
too is answered 500, naming the model, and counted (``servelab_poison_requests``); so a kill -9
of a worker loses nothing unless the retry dies too.  Deaths and retries are counted per model
(``servelab_worker_deaths``, ``servelab_retries``).  IPC time per batch is the round trip minus
the worker's own busy time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from typing import Any

from servelab.servers.engine import Engine
from servelab.servers.ipc import ARENA_BYTES, Arena, dumps, loads
from servelab.servers.tickets import LiveBatch
from servelab.servers.zoo.base import StageTimes
from servelab.servers.zygote import recv_json, send_json

log = logging.getLogger(__name__)

LIVENESS_S = 0.2
"""How often an idle dispatcher checks that its worker is alive."""
START_TIMEOUT_S = 300.0


@dataclass
class Slot:
    index: int
    arena_in: Arena
    arena_out: Arena
    conn: Connection | None = None
    pid: int = -1
    started: float = 0.0
    jobs: int = 0
    restarts: int = 0
    job: LiveBatch | None = None
    thread: threading.Thread | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class ProcessExecutor:
    """``workers`` processes serving ``models`` (names; loaded once, in the zygote)."""

    def __init__(
        self, engine: Engine, model_names: Sequence[str], workers: int, *,
        variant: str = "full", weights_dir: str | None = None, seed: int = 0,
        intra_op_threads: int = 1, arena_bytes: int = ARENA_BYTES, kernel: str = "torch",
        nice: int = 0,
    ):
        self.engine = engine
        self.model_names = list(model_names)
        self.n = workers
        self.spec = {
            "models": self.model_names, "variant": variant, "weights_dir": weights_dir,
            "seed": seed, "intra_op_threads": intra_op_threads, "kernel": kernel, "nice": nice,
        }
        self.arena_bytes = arena_bytes
        self.slots: list[Slot] = []
        self.zygote: subprocess.Popen[bytes] | None = None
        self.zygote_pid = -1
        self.load_s = 0.0
        self._ctl: socket.socket | None = None
        self._ctl_lock = threading.Lock()
        self._closing = False

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Start the zygote (loads the models), fork the workers, start the dispatchers."""
        self.slots = [Slot(i, Arena.create(self.arena_bytes), Arena.create(self.arena_bytes))
                      for i in range(self.n)]
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
        self.zygote = subprocess.Popen(
            [sys.executable, "-m", "servelab.servers.zygote", str(theirs.fileno())],
            pass_fds=[theirs.fileno()], env=env,
        )
        theirs.close()
        self._ctl = ours
        spec = dict(self.spec, arenas=[[s.arena_in.name, s.arena_out.name] for s in self.slots])
        send_json(ours, spec)
        ours.settimeout(START_TIMEOUT_S)
        try:
            ready, _ = recv_json(ours)
        except (EOFError, OSError) as exc:
            self.close()
            raise RuntimeError(
                f"process pool: the model-loading zygote failed to start ({exc}); see its log"
            ) from None
        ours.settimeout(30.0)
        self.zygote_pid = int(ready["ready"])
        self.load_s = float(ready.get("load_s", 0.0))
        for slot in self.slots:
            self._spawn(slot)
        for slot in self.slots:
            slot.thread = threading.Thread(
                target=self._loop, args=(slot,), name=f"dispatch-{slot.index}", daemon=True
            )
            slot.thread.start()

    def _spawn(self, slot: Slot) -> None:
        ours, theirs = Pipe(duplex=True)
        try:
            with self._ctl_lock:
                assert self._ctl is not None
                send_json(self._ctl, {"spawn": slot.index}, [theirs.fileno()])
                reply, _ = recv_json(self._ctl)
        finally:
            theirs.close()
        if "pid" not in reply:
            raise RuntimeError(f"zygote could not fork worker {slot.index}: {reply}")
        slot.conn, slot.pid, slot.started = ours, int(reply["pid"]), time.perf_counter()
        log.info("worker %d: pid %d", slot.index, slot.pid)

    def _restart(self, slot: Slot, why: str) -> None:
        old = slot.pid
        if slot.conn is not None:
            with contextlib.suppress(OSError):
                slot.conn.close()
            slot.conn = None
        if self._closing or self.engine.stopped:
            return
        self.engine.metrics.worker_restarts.inc()
        slot.restarts += 1
        try:
            self._spawn(slot)
        except Exception as exc:
            log.error("worker %d could not be replaced: %s", slot.index, exc)
            return
        log.warning("worker %d (pid %d) %s; replaced by pid %d", slot.index, old, why, slot.pid)

    def close(self, timeout: float = 5.0) -> None:
        """Ask idle workers to exit and kill busy ones (the drain is over), stop the zygote,
        free the arenas."""
        self._closing = True
        for slot in self.slots:
            if slot.conn is None:
                continue
            if slot.lock.acquire(timeout=0.05):
                try:
                    slot.conn.send_bytes(dumps(("exit",)))
                except OSError:
                    pass
                finally:
                    slot.lock.release()
            else:
                with contextlib.suppress(OSError):
                    os.kill(slot.pid, signal.SIGKILL)
        end = time.perf_counter() + timeout
        for slot in self.slots:
            if slot.thread is not None:
                slot.thread.join(max(0.0, end - time.perf_counter()))
            if slot.conn is not None:
                with contextlib.suppress(OSError):
                    slot.conn.close()
        if self._ctl is not None:
            with contextlib.suppress(OSError):
                self._ctl.close()
        if self.zygote is not None:
            try:
                self.zygote.wait(max(0.5, end - time.perf_counter()))
            except subprocess.TimeoutExpired:
                self.zygote.kill()
                self.zygote.wait()
        for slot in self.slots:
            self._reap_worker(slot.pid)
            slot.arena_in.close()
            slot.arena_out.close()

    @staticmethod
    def _reap_worker(pid: int) -> None:
        """Workers exit on EOF; make sure none outlives the server."""
        if pid <= 0:
            return
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.05)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)

    # -- dispatching -------------------------------------------------------------------------
    def _loop(self, slot: Slot) -> None:
        while True:
            job = self.engine.take(worker=slot.index, timeout=LIVENESS_S)
            if job is None:
                if self.engine.stopped or self._closing:
                    return
                self._check_alive(slot)
                continue
            with slot.lock:
                slot.job = job
                try:
                    self._run(slot, job)
                finally:
                    slot.job = None

    def _check_alive(self, slot: Slot) -> None:
        with slot.lock:
            conn = slot.conn
            if conn is None:
                self._restart(slot, "was missing")
                return
            try:
                if conn.poll(0):
                    conn.recv_bytes()  # an idle worker only ever sends EOF
            except (EOFError, OSError):
                self._restart(slot, "died while idle")

    def _run(self, slot: Slot, job: LiveBatch, died: tuple[int, ...] = ()) -> None:
        """Run ``job`` on ``slot``'s worker; ``died``: the pids of workers that already died
        running it (one = this is the retry)."""
        if slot.conn is None:
            self._restart(slot, "was missing")
            if slot.conn is None:
                self.engine.fail(job, f"worker {slot.index} is down", "unavailable")
                return
        conn = slot.conn
        preemptive = self.engine.policy.preemptive
        if job.batch is None:
            msg = ("run", job.model, job.n_rows, job.rows(), None, 0, None, preemptive)
        else:
            msg = ("run", job.model, job.n_rows, None, job.batch, job.stage, job.state, preemptive)
            job.batch = job.state = None
        t0 = time.perf_counter()
        busy = 0.0
        try:
            conn.send_bytes(dumps(msg, slot.arena_in))
            while True:
                reply = loads(conn.recv_bytes(), slot.arena_out)
                kind = reply[0]
                if kind == "stage":
                    stop = self.engine.on_stage(job, reply[1])
                    conn.send_bytes(b"stop" if stop else b"go")
                    continue
                busy = reply[-1]
                self._account(job, t0, busy)
                if kind == "done":
                    self._add_times(job, reply[2])
                    slot.jobs += 1
                    self.engine.finish(job, reply[1])
                elif kind == "preempted":
                    job.batch, job.stage, job.state = reply[1], reply[2], reply[3]
                    self._add_times(job, reply[4])
                    self.engine.requeue(job)
                elif kind == "error":
                    status, message = reply[1], reply[2]
                    if status == 400 and len(job.requests) > 1:
                        for sub in self.engine.split(job):
                            self._run(slot, sub)
                    else:
                        self.engine.fail(job, message, status)
                return
        except (EOFError, OSError) as exc:
            self._died(slot, job, (*died, slot.pid), exc)

    def _died(self, slot: Slot, job: LiveBatch, died: tuple[int, ...], exc: BaseException) -> None:
        """The worker died holding ``job``: replace it, then retry once or give up."""
        m = self.engine.metrics
        m.worker_deaths.labels(job.model).inc()
        self._restart(slot, f"died while serving {job.model} ({type(exc).__name__})")
        job.batch = job.state = None  # a retry starts over from the inputs
        job.stage = 0
        if len(died) < 2 and not (self._closing or self.engine.stopped):
            m.retries.labels(job.model).inc(len(job.requests))
            if len(job.requests) > 1:  # one by one: a poison request then dies alone
                for sub in self.engine.split(job):
                    self._run(slot, sub, died)
            else:
                self._run(slot, job, died)
            return
        pids = " and ".join(map(str, died))
        if len(died) >= 2:
            m.poison.labels(job.model).inc(len(job.requests))
            log.error("%s request killed its worker twice (pids %s); answered 500", job.model,
                      pids)
            message = (f"model '{job.model}': the worker process died twice running this "
                       f"request (pids {pids}); not retried again")
        else:
            message = (f"model '{job.model}': worker {slot.index} (pid {pids}) died running "
                       "this request while the server was stopping")
        self.engine.fail(job, message)

    def _account(self, job: LiveBatch, t0: float, busy: float) -> None:
        ipc = max(0.0, time.perf_counter() - t0 - busy)
        job.ipc += ipc
        self.engine.metrics.ipc_time.observe(ipc)

    @staticmethod
    def _add_times(job: LiveBatch, times: tuple[float, float, float]) -> None:
        t = job.times if job.times is not None else StageTimes()
        t.preprocess += times[0]
        t.forward += times[1]
        t.postprocess += times[2]
        job.times = t

    # -- introspection -----------------------------------------------------------------------
    def info(self, memory: bool = True) -> list[dict[str, Any]]:
        """Per worker: index, pid, restarts, jobs, and (``memory``) USS/PSS/RSS in bytes."""
        out = []
        for slot in self.slots:
            row: dict[str, Any] = {"worker": slot.index, "pid": slot.pid, "jobs": slot.jobs,
                                   "restarts": slot.restarts}
            if memory:
                row.update(process_memory(slot.pid))
            out.append(row)
        return out

    def zygote_info(self) -> dict[str, Any]:
        return {"pid": self.zygote_pid, "load_s": self.load_s, **process_memory(self.zygote_pid)}


def process_memory(pid: int) -> dict[str, int]:
    """USS / PSS / RSS of a process (bytes), from /proc/<pid>/smaps via psutil."""
    import psutil

    try:
        m = psutil.Process(pid).memory_full_info()
    except (psutil.Error, OSError):
        return {}
    return {"uss": int(m.uss), "pss": int(getattr(m, "pss", 0)), "rss": int(m.rss)}
