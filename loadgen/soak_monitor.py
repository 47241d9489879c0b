"""The soak's watcher beside the load: the server's process tree, its memory over time, and the
faults injected into it.

:class:`Monitor` is a thread started with the load's start time ``t0`` (the sender's clock,
:data:`servelab.loadgen.generator.clock`).  Every ``interval`` seconds it reads the RSS of each
process of the server's tree (:func:`process_tree`: the server itself, a process pool's
model-holding zygote and the workers forked from it); at ``kill_at`` it sends SIGKILL to one
process worker and times its replacement (a new pid under the zygote); at ``drain_at`` it sends
the server SIGTERM and times the drain until the server exits.  Everything it saw is kept as
rows (:attr:`Monitor.samples`) and events (:attr:`Monitor.events`), times in seconds from
``t0``; a server that exits before the SIGTERM is recorded as a ``crash`` event.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
from typing import Any

import psutil

from servelab.loadgen.generator import clock

log = logging.getLogger(__name__)

ZYGOTE_MODULE = "servelab.servers.zygote"
REPLACE_WAIT_S = 10.0
"""How long the monitor looks for a killed worker's replacement."""
REPLACE_POLL_S = 0.005
"""How often it looks meanwhile."""


def process_tree(pid: int) -> list[tuple[str, psutil.Process]]:
    """``(role, process)`` for the server ``pid`` and its descendants: ``server``, ``zygote``
    (a process pool's model holder), ``worker`` (forked from the zygote), ``other``."""
    try:
        root = psutil.Process(pid)
        children = root.children(recursive=True)
    except psutil.Error:
        return []
    cmd: dict[int, bool] = {}  # pid -> runs the zygote module (so do the workers it forks)
    for p in children:
        with contextlib.suppress(psutil.Error):
            cmd[p.pid] = any(ZYGOTE_MODULE in part for part in p.cmdline())
    out: list[tuple[str, psutil.Process]] = [("server", root)]
    for p in children:
        with contextlib.suppress(psutil.Error):
            forked = cmd.get(p.ppid(), False)
            role = ("worker" if forked and cmd.get(p.pid) else "zygote" if cmd.get(p.pid)
                    else "other")
            out.append((role, p))
    return out


def worker_pids(pid: int) -> list[int]:
    """The pids of the process workers of server ``pid`` (none for threads or asyncio)."""
    return sorted(p.pid for role, p in process_tree(pid) if role == "worker")


class Monitor(threading.Thread):
    """Samples RSS and injects the soak's faults (see the module docstring)."""

    def __init__(self, proc: subprocess.Popen[Any], t0: float, *, interval: float = 1.0,
                 kill_at: float | None = None, drain_at: float | None = None,
                 drain_wait_s: float = 60.0):
        super().__init__(name="soak-monitor", daemon=True)
        self.proc, self.t0, self.interval = proc, t0, interval
        self.kill_at, self.drain_at, self.drain_wait_s = kill_at, drain_at, drain_wait_s
        self.samples: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self._stop_event = threading.Event()
        self._replacing: tuple[float, list[int]] | None = None

    def now(self) -> float:
        return clock() - self.t0

    def stop(self) -> None:
        self._stop_event.set()
        self.join(self.drain_wait_s + REPLACE_WAIT_S + 5)

    def event(self, kind: str, **detail: Any) -> None:
        row = {"t": self.now(), "kind": kind, **detail}
        self.events.append(row)
        log.info("soak: %s at %.1f s %s", kind, row["t"], detail or "")

    def run(self) -> None:
        next_sample = max(0.0, self.now())
        while not self._stop_event.is_set():
            now = self.now()
            if self.proc.poll() is not None:
                if not any(e["kind"] in ("sigterm", "crash") for e in self.events):
                    self.event("crash", exit_code=self.proc.returncode)
                return
            if self.kill_at is not None and now >= self.kill_at:
                self.kill_at = None
                self.kill_worker()
            self.check_replaced()
            if self.drain_at is not None and now >= self.drain_at:
                self.drain_at = None
                self.sample()
                self.drain()
                return
            if now >= next_sample:
                self.sample()
                next_sample += self.interval
            due = [t for t in (next_sample, self.kill_at, self.drain_at) if t is not None]
            wait = max(0.0, min(due) - self.now())
            self._stop_event.wait(min(wait, REPLACE_POLL_S) if self._replacing else wait)

    def sample(self) -> None:
        t = self.now()
        for role, p in process_tree(self.proc.pid):
            with contextlib.suppress(psutil.Error):
                self.samples.append({"t": t, "role": role, "pid": p.pid,
                                     "rss_mb": p.memory_info().rss / 2**20})

    def kill_worker(self) -> None:
        """SIGKILL the lowest-pid process worker; wait for a new one to appear."""
        before = worker_pids(self.proc.pid)
        if not before:
            self.event("kill_skipped", reason="the server has no process worker to kill")
            return
        victim = before[0]
        try:
            os.kill(victim, signal.SIGKILL)
        except OSError as exc:
            self.event("kill_skipped", reason=f"kill -9 {victim} failed: {exc}")
            return
        self.event("kill", pid=victim)
        self._replacing = (clock(), before)

    def check_replaced(self) -> None:
        """Whether the killed worker's replacement has appeared (called every few ms)."""
        if self._replacing is None:
            return
        since, before = self._replacing
        new = [p for p in worker_pids(self.proc.pid) if p not in before]
        if new:
            self.event("replaced", pid=new[0], after_s=clock() - since)
            self._replacing = None
        elif clock() - since > REPLACE_WAIT_S:
            self.event("not_replaced", pid=before[0], waited_s=clock() - since)
            self._replacing = None

    def drain(self) -> None:
        """SIGTERM the server; wait for it to exit (``drain_wait_s`` at most)."""
        self.proc.send_signal(signal.SIGTERM)
        self.event("sigterm")
        start = clock()
        try:
            code = self.proc.wait(self.drain_wait_s)
        except subprocess.TimeoutExpired:
            self.event("drain_hung", waited_s=clock() - start)
            return
        self.event("exit", exit_code=code, drain_s=clock() - start)
