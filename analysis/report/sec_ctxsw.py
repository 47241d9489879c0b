"""Report section 2: how context-switch overhead differs between threads and processes for ML
workloads — switches and CPU vs wall time per request per concurrency model under one fixed
open-loop load, and IPC cost vs payload size (:mod:`servelab.analysis.os_study`)."""

from __future__ import annotations

import pandas as pd

from servelab.analysis.report.section import Context, Figure, Section

KEY = "ctxsw"
TITLE = "How does context-switch overhead differ between threads and processes for ML workloads?"
ORDER = 2

FIGURES = {"ctxsw": "switches", "ipc": "ipc"}


def measured(ctx: Context, name: str) -> pd.DataFrame:
    """One OS-study measurement through the report cache (shared with section 6)."""
    from servelab.analysis.os_study import FRAME_VERSION, run_one

    meta = {"frame_version": FRAME_VERSION,
            **({"profile": str(ctx.profile)} if name == "sched" else {})}
    return ctx.cached(f"os-study-{name}", lambda: run_one(name, ctx.quick, ctx.variant,
                      **({"profile": ctx.profile} if name == "sched" and ctx.profile else {})),
                      meta)


def figure(ctx: Context, key: str, name: str, what: str, df: pd.DataFrame) -> Figure:
    from servelab.analysis.os_study import MEASUREMENTS, command
    from servelab.analysis.os_study.claims import claim, spread
    from servelab.analysis.os_study.figures import plot

    stem = f"{key}-{what}"
    png = plot(name, df, ctx.out / f"{stem}.png", MEASUREMENTS[name].what)
    return Figure(name=stem, png=png, data=df, claim=claim(name, df),
                  command=command([name], ctx.quick, ctx.variant, ctx.profile),
                  spread=spread(name, df))


def load_note(frames: dict[str, pd.DataFrame], cores: object) -> str | None:
    """One note naming the measurements that ran while other jobs held cores."""
    if not isinstance(cores, int):
        return None
    busy = {}
    for name, df in frames.items():
        if "run_load1_before" in df.columns:
            load = max(float(df["run_load1_before"].iloc[0]),
                       float(df["run_load1_after"].iloc[0]))
            if load > cores - 0.5:
                busy[name] = load
    if not busy:
        return None
    return (f"{', '.join(busy)} ran at a 1-min load average of {min(busy.values()):.1f}-"
            f"{max(busy.values()):.1f} on {cores} CPUs: other jobs held cores, so their times "
            "(and any scaling with workers) are what a shared machine gave, not what it does "
            "idle.")


def _answer(df: pd.DataFrame, ipc: pd.DataFrame) -> str:
    from servelab.analysis.os_study.ipc import crossover

    g = df.groupby("setup")[["vcsw_per_req", "ivcsw_per_req", "cpu_s_per_req"]].median()
    parts = []
    for s in ("threads", "processes"):
        if s in g.index:
            parts.append(f"{s} {g.loc[s, 'vcsw_per_req']:.1f} voluntary + "
                         f"{g.loc[s, 'ivcsw_per_req']:.1f} involuntary switches and "
                         f"{g.loc[s, 'cpu_s_per_req'] * 1e3:.1f} ms CPU per request")
    x = crossover(ipc)
    tail = (f"; crossing to a worker process costs IPC, where shared memory beats a pipe from "
            f"{size_text(x)} up" if x else "; shared memory never beat the pipe at the sizes "
            "measured")
    return "Under the same load, " + " vs ".join(parts) + tail + "."


def size_text(n: int) -> str:
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):g} {unit}"
    return f"{n} B"


def build(ctx: Context) -> Section:
    sec = Section(key=KEY, title=TITLE, answer="")
    frames: dict[str, pd.DataFrame] = {}
    for name, what in FIGURES.items():
        try:
            frames[name] = measured(ctx, name)
        except (RuntimeError, OSError, ValueError, ImportError) as exc:
            sec.notes.append(f"{name} could not be measured here: {exc}")
            continue
        sec.figures.append(figure(ctx, KEY, name, what, frames[name]))
    if "ctxsw" in frames and "ipc" in frames:
        sec.answer = _answer(frames["ctxsw"], frames["ipc"])
    else:
        sec.answer = "Not measured on this machine (see the notes)."
    cores = ctx.machine.get("cores", "?")
    note = load_note(frames, cores)
    if note:
        sec.notes.append(note)
    if "ctxsw" in frames:
        d = frames["ctxsw"]
        sec.notes.append(
            f"Counts are of the server process and all its worker processes' threads "
            f"(/proc/<pid>/task/*/status, /proc/<pid>/stat), {d['rate'].iloc[0]:g} req/s of "
            f"{d['model'].iloc[0]} for {len(d)} run(s); the load generator shares the "
            f"{cores} cores and is not counted; idle housekeeping (CPU sampler, reaper) is "
            f"included. 1-min load average around the runs: "
            f"{d['run_load1_before'].iloc[0]:.1f} -> {d['run_load1_after'].iloc[0]:.1f}.")
    return sec
