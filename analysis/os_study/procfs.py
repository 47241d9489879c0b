"""What the kernel says about a process and its threads, from ``/proc``.

* :func:`counters` — per process, summed over its threads (``/proc/<pid>/task/*``): voluntary
  and involuntary context switches (``status``), user and system CPU (``/proc/<pid>/stat``,
  clock ticks) and CPU time in nanoseconds (``schedstat``, exact);
* :func:`smaps_rollup` — a process's memory by kind (Rss, Pss, Private_Dirty, ...), in KiB.

A thread that exits between two readings takes its counts with it (the kernel folds them into
nothing we can read per task), so callers read counters of long-lived servers only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Counters:
    voluntary: int = 0        # voluntary_ctxt_switches: the thread blocked (I/O, lock, sleep)
    involuntary: int = 0      # nonvoluntary_ctxt_switches: the scheduler took the CPU away
    user_s: float = 0.0       # /proc/<pid>/stat utime (whole process)
    system_s: float = 0.0     # /proc/<pid>/stat stime
    cpu_s: float = 0.0        # sum of the threads' schedstat run time (ns precision)
    threads: int = 0

    def __add__(self, other: Counters) -> Counters:
        return Counters(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                           for f in fields(self)})

    def __sub__(self, other: Counters) -> Counters:
        return Counters(**{f.name: getattr(self, f.name) - getattr(other, f.name)
                           for f in fields(self)})


def _status_switches(path: Path) -> tuple[int, int]:
    vol = invol = 0
    for line in path.read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            vol = int(line.split()[1])
        elif line.startswith("nonvoluntary_ctxt_switches:"):
            invol = int(line.split()[1])
    return vol, invol


def _stat_times(pid: int) -> tuple[float, float]:
    text = Path(f"/proc/{pid}/stat").read_text()
    rest = text[text.rindex(")") + 2:].split()  # fields after "pid (comm)"; utime is field 14
    return int(rest[11]) / TICK, int(rest[12]) / TICK


def counters(pid: int) -> Counters:
    """The process's counters, summed over its threads (raises OSError if it is gone)."""
    vol = invol = threads = 0
    cpu_ns = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        task = Path(f"/proc/{pid}/task/{tid}")
        try:
            v, i = _status_switches(task / "status")
            cpu_ns += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # exited while we read
        vol, invol, threads = vol + v, invol + i, threads + 1
    user, system = _stat_times(pid)
    return Counters(vol, invol, user, system, cpu_ns / 1e9, threads)


def total(pids: Iterable[int]) -> Counters:
    out = Counters()
    for p in pids:
        try:
            out = out + counters(p)
        except OSError:
            continue
    return out


def smaps_rollup(pid: int) -> dict[str, int]:
    """``/proc/<pid>/smaps_rollup`` as {field: KiB} (Rss, Pss, Shared_Clean, Private_Dirty...)."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key.strip()] = int(parts[0])
    return out
