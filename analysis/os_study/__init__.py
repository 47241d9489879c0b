"""The OS study: the measurements behind report sections 2 (context switches, CPU vs wall time
and IPC per concurrency model) and 6 (the seed's table of OS concepts), each on this machine.

Each measurement is a function ``(quick, variant, **overrides) -> DataFrame`` in a module of
its own; :data:`MEASUREMENTS` names them.  ``servelab os-study`` runs them and writes the
frames; the report's sections run them through their cache.  Summaries (:mod:`.claims`) and
figures (:mod:`.figures`) are pure functions of the frames.  Every time in a frame is in
seconds (``*_s``, ``seconds``, ``s_per_read``); the printed numbers, claims and figure axes
show ms, us or ns.

========== ========= ==========================================================================
name       section   what
========== ========= ==========================================================================
ctxsw      2         live: switches and CPU vs wall time per request, per concurrency model
ipc        2, 6      pipe vs multiprocessing.Queue vs shared memory, one-way time vs payload
spawn      6         start cost: thread, os.fork, multiprocessing fork / spawn
pingpong   6         context switch: thread vs process pipe ping-pong
memory     6         USS / PSS per forked worker, copy-on-write stage by stage, RSS per thread
locks      6         live: model-lock wait under --model-lock global / per-model
deadlock   6         live: two locks in opposite order, answered by the server's watchdog
gil        6         the C kernel releasing vs holding the GIL, threads vs processes
sched      6         simulated: the slow class's wait under FIFO vs priority (starvation)
perf       6         which perf counters this machine exposes
cache      6         random-read time vs working-set size (the cache hierarchy)
affinity   6         live: two workers unpinned / pinned one per core / both on one core
========== ========= ==========================================================================
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Measurement:
    name: str
    module: str      # servelab.analysis.os_study.<module>
    function: str
    sections: tuple[int, ...]
    live: bool       # drives a live server (waits for a quiet machine first)
    what: str

    def load(self) -> Callable[..., pd.DataFrame]:
        import importlib

        mod = importlib.import_module(f"servelab.analysis.os_study.{self.module}")
        return getattr(mod, self.function)  # type: ignore[no-any-return]


MEASUREMENTS: dict[str, Measurement] = {m.name: m for m in (
    Measurement("ctxsw", "ctxsw", "measure", (2,), True,
                "context switches and CPU vs wall time per request, per concurrency model"),
    Measurement("ipc", "ipc", "measure", (2, 6), False,
                "IPC one-way time vs payload: pipe, multiprocessing.Queue, shared memory"),
    Measurement("spawn", "basics", "measure_spawn", (6,), False,
                "start cost of a thread, os.fork, multiprocessing fork and spawn"),
    Measurement("pingpong", "basics", "measure_pingpong", (6,), False,
                "context switch between two threads vs two processes (pipe ping-pong)"),
    Measurement("memory", "memory", "measure", (6,), False,
                "USS / PSS per forked worker and copy-on-write, stage by stage"),
    Measurement("locks", "sync", "measure_locks", (6,), True,
                "model-lock wait under --model-lock global / per-model"),
    Measurement("deadlock", "sync", "measure_deadlock", (6,), True,
                "two locks in opposite order, detected by the server's watchdog"),
    Measurement("gil", "basics", "measure_gil", (6,), False,
                "C kernel releasing vs holding the GIL: threads vs processes"),
    Measurement("sched", "sched", "measure", (6,), False,
                "starvation of the slow class: FIFO vs priority (simulated)"),
    Measurement("perf", "cache", "measure_perf", (6,), False,
                "which perf counters the machine exposes"),
    Measurement("cache", "cache", "measure_cache", (6,), False,
                "random-read time vs working-set size"),
    Measurement("affinity", "affinity", "measure", (6,), True,
                "two workers unpinned, pinned one per core, pinned to one core"),
)}

FRAME_VERSION = 2
"""The frames' format: 2 has every time in seconds (version 1 had ``*_ms``, ``ns_per_read``);
part of the report cache's key, so a cached version-1 frame is measured again."""

SECTION_2 = ("ctxsw", "ipc")
SECTION_6 = ("spawn", "memory", "pingpong", "locks", "deadlock", "ipc", "gil", "sched",
             "perf", "cache", "affinity")


def command(names: tuple[str, ...] | list[str], quick: bool, variant: str,
            profile: object = None) -> str:
    """The command line that reproduces these measurements (``profile``: the simulated
    starvation figure's, when one was given)."""
    parts = ["servelab os-study"]
    if profile is not None and (not names or "sched" in names):
        parts.append(f"--profile {profile}")
    if quick:
        parts.append("--quick")
    if variant != "full":
        parts.append(f"--variant {variant}")
    if names:
        parts.append("--only " + " ".join(names))
    return " ".join(parts)


def run_one(name: str, quick: bool, variant: str, **over: Any) -> pd.DataFrame:
    """Run measurement ``name``; its frame carries the run's wall time and the machine's 1-min
    load average before and after it (columns ``run_*``: the machine is shared, and a busy
    neighbour shows there)."""
    if name not in MEASUREMENTS:
        raise ValueError(f"unknown measurement {name!r}; valid: {', '.join(MEASUREMENTS)}")
    m = MEASUREMENTS[name]
    if m.live:
        from servelab.analysis.os_study.live import wait_quiet

        wait_quiet()
    load0, t = os.getloadavg()[0], time.perf_counter()
    df = m.load()(quick=quick, variant=variant, **over)
    return df.assign(run_wall_s=time.perf_counter() - t, run_load1_before=load0,
                     run_load1_after=os.getloadavg()[0])
