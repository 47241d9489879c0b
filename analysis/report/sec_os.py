"""Report section 6: the seed's table of OS concepts, each with a number measured on this
machine (:mod:`servelab.analysis.os_study`): process vs thread, context switching,
synchronization (lock contention, a deadlock and the server's watchdog), IPC vs shared memory,
the GIL, CPU scheduling (starvation), memory (USS / PSS, copy-on-write), cache effects, CPU
affinity."""

from __future__ import annotations

import pandas as pd

from servelab.analysis.report.sec_ctxsw import figure, load_note, measured, size_text
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
    frames: dict[str, pd.DataFrame] = {}
    for concept, name, what in CONCEPTS:
        try:
            df = measured(ctx, name)
        except (RuntimeError, OSError, ValueError, ImportError) as exc:
            sec.notes.append(f"{concept}: could not be measured here ({exc})")
            rows.append({"concept": concept, "measured here": f"not measured: {exc}",
                         "command": command([name], ctx.quick, ctx.variant)})
            continue
        fig = figure(ctx, KEY, name, what, df)
        frames[name] = df
        sec.figures.append(fig)
        rows.append({"concept": concept, "measured here": fig.claim, "command": fig.command})
    sec.tables.append(Table(name=f"{KEY}-concepts", data=pd.DataFrame(rows),
                            caption="Each OS concept with the number measured on this machine",
                            command=command([], ctx.quick, ctx.variant, ctx.profile)))
    sec.answer = _answer(frames)
    note = load_note(frames, ctx.machine.get("cores"))
    sec.notes += ([note] if note else []) + _notes(ctx)
    return sec


def _answer(frames: dict[str, pd.DataFrame]) -> str:
    """One sentence: the headline number of each concept that was measured."""
    from servelab.analysis.os_study.claims import numbers
    from servelab.analysis.os_study.ipc import crossover

    def num(name: str, label: str) -> float:
        return next((v for k, v, _ in numbers(name, frames[name]) if k == label), float("nan"))

    parts = []
    if "spawn" in frames:
        parts.append(f"a thread starts in {num('spawn', 'start thread'):.0f} us, a fork in "
                     f"{num('spawn', 'start os.fork') / 1000:.0f} ms")
    if "memory" in frames:
        parts.append(f"a forked worker keeps {num('memory', 'USS/worker inferred (unfrozen)'):.0f}"
                     f" MiB private (one unfrozen gc.collect() makes it "
                     f"{num('memory', 'USS/worker collected (unfrozen)'):.0f} MiB)")
    if "pingpong" in frames:
        parts.append(f"a switch costs {num('pingpong', 'switch thread'):.1f} us between "
                     f"threads, {num('pingpong', 'switch process'):.1f} us between processes")
    if "deadlock" in frames:
        parts.append(f"a lock-order deadlock is answered HTTP "
                     f"{num('deadlock', 'deadlocked request status'):.0f} by the watchdog in "
                     f"{num('deadlock', 'deadlocked request answered after'):.1f} s")
    if "ipc" in frames and crossover(frames["ipc"]):
        parts.append(f"shared memory beats a pipe from {size_text(crossover(frames['ipc']) or 0)}")
    if "affinity" in frames:
        p50 = frames["affinity"].groupby("condition")["p50_s"].median() * 1e3
        parts.append("pinning two workers one per core gave p50 "
                     f"{p50.get('spread', float('nan')):.0f} ms vs "
                     f"{p50.get('unpinned', float('nan')):.0f} ms unpinned and "
                     f"{p50.get('same-core', float('nan')):.0f} ms on one core")
    if not parts:
        return "Not measured on this machine (see the notes)."
    return "On this machine " + "; ".join(parts) + "."


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
