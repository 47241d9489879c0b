"""A calibration: measure this machine into a profile (``servelab calibrate``), show and
compare profiles.

A killed run resumes: finished points are kept in ``<out>.d/points/`` and skipped next time
(``--fresh`` starts over).  Raw samples go to ``<out>.samples.parquet``, plots to
``<out>.plots/``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from servelab.calibrate import plan as planmod
from servelab.core.profile import Profile
from servelab.machine import machine_key, machine_metadata

PROFILE_DIR = Path("results") / "profiles"


def default_out(quick: bool) -> Path:
    meta = machine_metadata()
    return PROFILE_DIR / f"{machine_key(meta)}-{'quick' if quick else 'full'}.json"


def calibrate(
    out: Path, quick: bool, models: list[str], variant: str = "full",
    only: list[str] | None = None, fresh: bool = False, progress: bool = True, plots: bool = True,
    command: str = "", kernels: tuple[str, ...] | None = None,
) -> tuple[Profile, dict[str, Any]]:
    """Run (or resume) a calibration and write the profile, raw samples, summary and plots
    (``command``: the line that reproduces it, recorded in the summary)."""
    from servelab.calibrate.build import build_profile, samples_table
    from servelab.calibrate.runner import run_points
    from servelab.reproduce import run_metadata
    from servelab.results import write_json, write_parquet

    meta = machine_metadata(import_torch=True)
    started = run_metadata(command, meta)
    planned = planmod.plan(quick=quick, cores=meta["cores"], models=tuple(models),
                           variant=variant, kernels=kernels)
    points = [p for p in planned if p.bench in only] if only else planned
    if not points:
        raise ValueError(f"--only {only} selects no point; benches: "
                         f"{sorted({p.bench for p in planmod.plan()})}")
    work = out.with_suffix(".d")
    if fresh and work.exists():
        if only:  # start over on the selected benchmarks only
            for p in points:
                (work / "points" / f"{p.id}.json").unlink(missing_ok=True)
        else:
            shutil.rmtree(work)
    t0 = time.perf_counter()
    results = run_points(points, work, progress=progress)
    if only:  # the profile is built from every measured point, not the selection's alone
        results += stored_points([p for p in planned if p not in points], work)
    source = (f"servelab calibrate{' --quick' if quick else ''} ({len(results)} points, "
              f"variant {variant}, {time.perf_counter() - t0:.0f}s)")
    profile, summary = build_profile(results, meta, source)
    profile.save(out)
    write_parquet(out.with_suffix(".samples.parquet"), samples_table(results))
    summary = {**started, **summary, "machine_key": machine_key(meta)}
    write_json(out.with_suffix(".summary.json"), summary)
    if plots:
        from servelab.calibrate.plots import plot_profile

        plot_profile(profile, out.with_suffix(".plots"))
    return profile, summary


def stored_points(points: list[Any], work: Path) -> list[dict[str, Any]]:
    """The stored results of those of ``points`` already measured under ``work``."""
    import json

    out = []
    for p in points:
        f = work / "points" / f"{p.id}.json"
        if f.exists():
            out.append(json.loads(f.read_text()))
    return out


def show(profile: Profile) -> str:
    """A readable summary of a profile."""
    m = profile.machine
    lines = [
        f"machine: {m.cpu_model}, {m.cores} cores, {m.memory_bytes / 2**30:.1f} GiB, "
        f"kernel {m.kernel}, Python {m.python}, torch {m.torch}",
        f"measured: {m.date or '?'} by {m.source or '?'}",
        "",
        f"{'model':<16} {'service ms at sizes (1 thread, batch 1)':<46} {'cv':>5} {'GIL':>5} "
        f"{'batch^':>6} {'2-thr':>6} {'stages':>6} {'MB':>6}",
    ]
    for name, mp in profile.models.items():
        sizes = [p[0] for p in mp.forward.points] or [None]
        cells = []
        for s in sizes[:5]:
            x = s if s is not None else 1.0
            label = f"{int(s)}:" if s is not None else ""
            cells.append(f"{label}{mp.mean_service(x) * 1e3:.1f}")
        lines.append(
            f"{name:<16} {' '.join(cells):<46} {mp.cv:>5.2f} {mp.gil_share:>5.2f} "
            f"{mp.batch_exponent:>6.2f} {mp.speedup(2):>6.2f} {mp.stages:>6} {mp.memory_mb:>6.0f}"
        )
    inter = profile.interference
    lines += [
        "",
        "interference (residual slowdown per request at k = 1, 2, ...):",
        "  threads   " + " ".join(f"{v:.2f}" for v in inter.threads),
        "  processes " + " ".join(f"{v:.2f}" for v in inter.processes),
        f"IPC (pipe): {profile.ipc.fixed_s * 1e6:.1f} µs + {profile.ipc.per_byte_s * 1e9:.2f} ns/byte",
    ]
    for name, fit in profile.machine.extra.get("ipc_methods", {}).items():
        lines.append(f"  {name:<6} {fit['fixed'] * 1e6:7.1f} µs + {fit['per_unit'] * 1e9:.3f} ns/byte")
    cs = profile.machine.extra.get("context_switch_s")
    if cs:
        lines.append("context switch (pipe ping-pong): " + ", ".join(
            f"{k} {v * 1e6:.2f} µs" for k, v in cs.items()))
    perf = profile.machine.extra.get("perf_stat")
    if perf:
        lines.append(f"perf stat: {'available' if perf.get('available') else 'unavailable'}"
                     + (f" ({perf.get('reason')})" if not perf.get("available") else
                        f" {perf.get('counters')}"))
    ev = profile.event_loop
    lines.append(f"event loop: {ev.per_request_s * 1e6:.1f} µs/request, executor hand-off "
                 f"{ev.thread_handoff_s * 1e6:.1f} µs, inline stall {ev.inline_block_s * 1e6:.1f} µs")
    for stack, h in profile.http.items():
        lines.append(f"HTTP {stack:<9}: {h.fixed_s * 1e3:.2f} ms/request")
    from servelab.calibrate.live import describe

    lines += describe(profile.frontend, profile.client, profile.gil)
    mem = profile.memory
    lines.append(f"memory: server base {mem.server_base_mb:.0f} MB, +{mem.process_base_mb:.0f} MB "
                 f"USS per worker process, +{mem.thread_mb:.1f} MB per thread")
    if profile.notes:
        lines.append(f"notes: {profile.notes}")
    return "\n".join(lines)


def compare(a: Profile, b: Profile) -> tuple[float, list[tuple[str, float, float, float]]]:
    """Median service times of two profiles at their common sizes: (worst relative
    disagreement, rows of (model@size, a_s, b_s, rel)), times in seconds."""
    rows = []
    for name in sorted(set(a.models) & set(b.models)):
        ma, mb = a.models[name], b.models[name]
        sizes = sorted({p[0] for p in ma.forward.points} & {p[0] for p in mb.forward.points})
        for s in sizes or [1.0]:  # no points: a size-independent (fixed) cost
            x, y = ma.mean_service(s), mb.mean_service(s)
            key = f"{name}@{int(s)}" if sizes else name
            rows.append((key, x, y, abs(x - y) / min(x, y)))
    if not rows:
        raise ValueError("the two profiles share no model")
    return max(r[3] for r in rows), rows
