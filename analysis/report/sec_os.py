"""Report section 6: the seed's table of OS concepts, each with a number measured on this
machine (:mod:`servelab.analysis.os_study`): process vs thread, context switching,
synchronization (lock contention, a deadlock and the server's watchdog), IPC vs shared memory,
the GIL, CPU scheduling (starvation), memory (USS / PSS, copy-on-write), cache effects, CPU
affinity."""

from __future__ import annotations

import pandas as pd

from servelab.analysis.report.sec_ctxsw import figure, load_note, measured
from servelab.analysis.report.section import Context, Section, Table

KEY = "os"
TITLE = "The seed's table of OS concepts, each with the number measured on this machine"
ORDER = 6

CONCEPTS: tuple[tuple[str, str, str], ...] = (
    # (concept, measurement, figure suffix)
    ("process vs thread: start cost", "spawn", "spawn"),
    ("process vs thread: memory; copy-on-write after fork", "memory", "memory"),
    ("context switching", "pingpong", "pingpong"),
    ("synchronization: lock contention", "locks", "locks"),
    ("synchronization: deadlock and the watchdog", "deadlock", "deadlock"),
    ("IPC vs shared memory", "ipc", "ipc"),
    ("the GIL", "gil", "gil"),
    ("CPU scheduling: starvation", "sched", "starvation"),
    ("cache effects: perf counters", "perf", "perf"),
    ("cache effects: working set", "cache", "cache"),
    ("CPU affinity", "affinity", "affinity"),
)


def build(ctx: Context) -> Section:
    from servelab.analysis.os_study import command

    sec = Section(key=KEY, title=TITLE, answer="")
    rows = []
    claims: dict[str, str] = {}
    for concept, name, what in CONCEPTS:
        try:
            df = measured(ctx, name)
        except (RuntimeError, OSError, ValueError, ImportError) as exc:
            sec.notes.append(f"{concept}: could not be measured here ({exc})")
            rows.append({"concept": concept, "measured here": f"not measured: {exc}",
                         "command": command([name], ctx.quick, ctx.variant)})
            continue
        fig = figure(ctx, KEY, name, what, df)
        note = load_note(name, df, ctx.machine.get("cores"))
        if note and name != "ipc":  # ipc: section 2 says it
            sec.notes.append(note)
        sec.figures.append(fig)
        claims[name] = fig.claim
        rows.append({"concept": concept, "measured here": fig.claim, "command": fig.command})
    sec.tables.append(Table(name=f"{KEY}-concepts", data=pd.DataFrame(rows),
                            caption="Each OS concept with the number measured on this machine",
                            command=command([], ctx.quick, ctx.variant)))
    sec.answer = _answer(claims)
    sec.notes += _notes(ctx)
    return sec


def _answer(claims: dict[str, str]) -> str:
    keys = [k for k in ("spawn", "memory", "deadlock", "affinity") if k in claims]
    if not keys:
        return "Not measured on this machine (see the notes)."
    return " ".join(claims[k] for k in keys)


def _notes(ctx: Context) -> list[str]:
    cores = ctx.machine.get("cores", "?")
    out = [f"Measured on {cores} shared CPUs ({ctx.machine.get('cpu_model', '?')}); live runs "
           "(locks, deadlock, affinity) drive servers on 127.0.0.1 with the load generator on "
           "the same cores, so the affinity figure shows what pinning does when the front end "
           "and the client compete for the same two cores, not on a dedicated machine."]
    if ctx.profile is None:
        out.append("Starvation is simulated with the design's default profile (no calibrated "
                   "profile given); pass --profile to use this machine's.")
    return out
