"""The overload soak behind ``servelab bench soak``: is a server stable at 2x its capacity?

1. **Capacity.**  The server's capacity is the best sustainable rate of the capacity ladder
   ``servelab bench serve`` climbs (:func:`servelab.loadgen.serve_bench.ladder`: p99 within
   the SLO, <= 1 % errors), with its p99; or ``--capacity`` (its p99 measured in one step at
   that rate unless ``--capacity-p99-ms`` gives it).
2. **Soak.**  Poisson arrivals at ``overload`` x the capacity for ``duration`` seconds from
   loadgen's open-loop sender (:func:`servelab.loadgen.processes.run_senders`), while the
   :class:`~servelab.loadgen.soak_monitor.Monitor` samples the RSS of the server's process
   tree every second, kills one process worker with SIGKILL halfway through, and sends the
   server SIGTERM at the end — the load goes on for ``tail_s`` more seconds, so the drain
   happens under load.
3. **Verdict.**  :func:`servelab.loadgen.soak_verdict.judge` on the records: goodput, ok p99,
   every failure an explicit 503, no crash, RSS growth, requests lost.

Everything the run measured goes into its folder (see :func:`write_soak`).
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from servelab.core.workload import WorkloadSpec
from servelab.loadgen.accounting import build_records, merge_results
from servelab.loadgen.generator import SenderOptions
from servelab.loadgen.payloads import MakeInput, Payloads, Target
from servelab.loadgen.processes import run_senders
from servelab.loadgen.progress import Progress
from servelab.loadgen.schedule import Schedule
from servelab.loadgen.soak_monitor import Monitor
from servelab.loadgen.soak_verdict import Capacity, Targets, Timeline, judge, windows
from servelab.servers import launch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SoakPlan:
    duration: float
    """Seconds of overload judged; the SIGTERM comes at their end."""
    overload: float = 2.0
    """Offered rate as a multiple of the capacity."""
    kill_at: float | None = None
    """When to kill -9 a process worker (None: no kill)."""
    drain: bool = True
    """SIGTERM at the end of ``duration``, under load."""
    tail_s: float = 3.0
    """Seconds of load after the SIGTERM."""
    sample_s: float = 1.0
    """RSS sampling interval."""
    drain_wait_s: float = 60.0
    """Longest wait for the server's exit after SIGTERM."""

    def __post_init__(self) -> None:
        if not self.duration > 0 or not self.overload > 0 or not self.sample_s > 0:
            raise ValueError("a soak needs duration > 0, overload > 0 and sample_s > 0")
        if self.kill_at is not None and not 0 < self.kill_at < self.duration:
            raise ValueError(f"kill_at {self.kill_at:g} s is outside the soak (0, "
                             f"{self.duration:g})")

    @property
    def schedule_s(self) -> float:
        return self.duration + (self.tail_s if self.drain else 0.0)


class SoakServer(launch.ServerProcess):
    """The server under soak, with a label for the ladder's log lines."""

    @property
    def label(self) -> str:
        return self.config.config_id


@dataclass
class SoakRun:
    records: pd.DataFrame
    samples: pd.DataFrame
    events: list[dict[str, Any]] = field(default_factory=list)
    schedule_s: float = 0.0


def poisson_spec(model: str, size: int, rate: float, duration: float, seed: int) -> WorkloadSpec:
    """One model at one input size, Poisson arrivals at ``rate`` for ``duration`` s."""
    return WorkloadSpec.from_dict({
        "name": f"{model}-soak", "duration": duration,
        "arrival": {"kind": "poisson", "rate": rate}, "mix": {model: 1.0},
        "sizes": {model: {"kind": "fixed", "value": int(size)}}, "seed": seed})


def measure_capacity(server: SoakServer, model: str, size: int, args: argparse.Namespace,
                     on_step: Callable[[pd.DataFrame, dict[str, Any]], None]
                     ) -> tuple[Capacity, dict[str, Any]]:
    """The capacity the overload is a multiple of (see the module docstring).  ``args``
    carries ``bench serve``'s ladder flags (step_s, min_requests, warmup_s, growth,
    max_steps, binary, seed) and ``capacity`` / ``capacity_p99_ms`` / ``slo_ms``."""
    from servelab.loadgen.serve_bench import ladder, open_loop_step

    if args.capacity is not None:
        if args.capacity_p99_ms is not None:
            return Capacity(args.capacity, args.capacity_p99_ms / 1e3, "given"), {}
        duration = max(args.step_s, args.min_requests / args.capacity)
        rec, s = open_loop_step(server.url, model, size, args.capacity, duration, args.seed,
                                args)
        on_step(rec, s)
        server.wait_idle()
        return Capacity(args.capacity, s["p99_s"], "given rate, p99 measured"), {"step": s}
    r = ladder(server, model, size, server.config.workers, args.slo_ms, args, on_step)
    best = r.get("best")
    if not best:
        raise RuntimeError(f"the capacity ladder found no sustainable rate ({r['note']}); "
                           "give --capacity")
    return Capacity(float(best["achieved_rps"]), float(best["p99_s"]), "ladder"), r


def run_soak(server: launch.ServerProcess, spec: WorkloadSpec, plan: SoakPlan, *,
             sender: SenderOptions, senders: int = 1, binary: bool = False,
             make_input: MakeInput | None = None, progress: bool = True) -> SoakRun:
    """Send ``spec`` (``plan.schedule_s`` long) open loop at ``server`` while the monitor
    samples and injects the plan's faults; the records, RSS samples and events."""
    assert server.proc is not None
    target = Target.parse(server.url)
    schedule = Schedule.from_spec(spec)
    payloads = Payloads.build(schedule, target, make_input, binary=binary, seed=spec.seed)
    log.info("soak: %d requests over %.0f s (%.1f req/s) to %s", len(schedule),
             schedule.duration, spec.mean_rate(), target.url)
    started: list[Any] = []

    def on_start(counters: Callable[[], np.ndarray], t0: float) -> None:
        mon = Monitor(server.proc, t0, interval=plan.sample_s,  # type: ignore[arg-type]
                      kill_at=plan.kill_at, drain_at=plan.duration if plan.drain else None,
                      drain_wait_s=plan.drain_wait_s)
        mon.start()
        started.append(mon)
        if progress:
            started.append(Progress(counters, len(schedule), schedule.duration).start(t0))

    try:
        results = run_senders(schedule, payloads, target, sender, senders, on_start)
    finally:
        for obj in reversed(started):
            obj.stop()
    if not started:
        raise RuntimeError("the load generator never started")
    mon = started[0]
    records = build_records(schedule, merge_results(results), 0.0, server.config.config_id)
    samples = pd.DataFrame(mon.samples, columns=["t", "role", "pid", "rss_mb"])
    return SoakRun(records, samples, list(mon.events), schedule.duration)


def verdict(run: SoakRun, capacity: Capacity, targets: Targets) -> dict[str, Any]:
    return judge(run.records, run.samples, Timeline.from_events(run.events, run.schedule_s),
                 capacity, targets)


def write_soak(out: Path, run: SoakRun, summary: dict[str, Any],
               capacity_steps: pd.DataFrame | None, title: str) -> dict[str, Path]:
    """``records.parquet`` (per request), ``windows.parquet`` (per second), ``rss.parquet``
    (the monitor's samples), ``capacity_steps.parquet`` (the ladder), ``summary.json`` and
    ``soak.png``."""
    from servelab.loadgen.soak_plot import plot_soak
    from servelab.results import write_json, write_parquet

    win = windows(run.records, run.samples)
    files = {"records": out / "records.parquet", "windows": out / "windows.parquet",
             "rss": out / "rss.parquet", "summary": out / "summary.json",
             "figure": out / "soak.png"}
    write_parquet(files["records"], run.records)
    write_parquet(files["windows"], win)
    write_parquet(files["rss"], run.samples)
    if capacity_steps is not None and len(capacity_steps):
        files["capacity_steps"] = out / "capacity_steps.parquet"
        write_parquet(files["capacity_steps"], capacity_steps)
    plot_soak(win, run.events, summary["verdict"]["capacity"], files["figure"], title)
    write_json(files["summary"], {**summary, "files": {k: v.name for k, v in files.items()}})
    return files


def plan_dict(plan: SoakPlan) -> dict[str, Any]:
    d = asdict(plan)
    d["schedule_s"] = plan.schedule_s
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}
