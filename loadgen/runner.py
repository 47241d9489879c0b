"""One load run, end to end: workload -> schedule -> bodies -> senders -> records + summary.

:func:`run_load` is the library entry point behind ``servelab load`` (and the benchmark):
it samples the workload once, prebuilds every request's bytes, sends from one or more
processes, and writes ``records.parquet`` (the shared per-request schema plus loadgen
columns) and ``summary.json`` into the run's folder.
"""

from __future__ import annotations

import logging
import shlex
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from servelab.core.config import opt
from servelab.core.workload import WorkloadSpec
from servelab.loadgen.accounting import build_records, merge_results, summarize
from servelab.loadgen.generator import SenderOptions
from servelab.loadgen.payloads import MakeInput, Payloads, Target
from servelab.loadgen.processes import run_senders
from servelab.loadgen.progress import Progress
from servelab.loadgen.schedule import Schedule, prepare_spec
from servelab.loadgen.target import check_models
from servelab.reproduce import run_metadata
from servelab.summary import Window

log = logging.getLogger(__name__)

SUMMARY_VERSION = 2
"""2: the shared :class:`servelab.summary.Summary` (seconds) plus a ``generator`` block."""


@dataclass(frozen=True)
class LoadConfig:
    """What to send where (the run-level flags of ``servelab load``)."""

    workload: str = opt("fast-only", "shipped workload name or a YAML/JSON workload file")
    target: str = opt("http://127.0.0.1:8000", "OIP v2 endpoint base URL")
    rate: float | None = opt(None, "mean request rate per second, rescaling the workload (None = its own)")
    duration: float | None = opt(None, "seconds of schedule (None = the workload's)")
    warmup: float | None = opt(None, "seconds excluded from the summary (None = the workload's warmup_s)")
    seed: int | None = opt(None, "workload seed (None = the workload's)")
    processes: int = opt(1, "sender processes sharing the schedule round-robin")
    binary: bool = opt(False, "send tensors with the binary-data extension instead of JSON")
    config_id: str = opt("", "label of the server configuration, written into every record")
    out: str | None = opt(None, "output folder (None = results/load-<timestamp>)")
    progress: bool = opt(True, "print a progress line while running")
    check_models: bool = opt(True, "before sending, check the target serves the workload's "
                             "models (GET /v2/models/{name}/ready); stop if it does not")

    def __post_init__(self) -> None:
        if self.processes < 1:
            raise ValueError(f"processes must be >= 1, got {self.processes}")


@dataclass
class LoadRun:
    """A finished run: its records, summary and (if written) folder."""

    records: pd.DataFrame
    summary: dict[str, Any]
    path: Path | None = None


def resolve_spec(cfg: LoadConfig) -> WorkloadSpec:
    from servelab.workloads import load_workload

    spec = load_workload(cfg.workload)
    return prepare_spec(spec, cfg.rate, cfg.duration, cfg.seed, cfg.warmup)


def command_line(cfg: LoadConfig, sender: SenderOptions, spec: WorkloadSpec) -> str:
    """The ``servelab load`` command that reproduces this run (resolved values spelled out)."""
    args = ["servelab", "load", "--workload", cfg.workload, "--target", cfg.target,
            "--rate", f"{spec.mean_rate():g}", "--duration", f"{spec.total_duration:g}",
            "--warmup", f"{spec.warmup_s:g}", "--seed", str(spec.seed)]
    for obj in (cfg, sender):
        for f in fields(obj):
            if f.name in ("workload", "target", "rate", "duration", "warmup", "seed", "out",
                          "progress"):
                continue
            value = getattr(obj, f.name)
            if value == f.default:
                continue
            flag = "--" + f.name.replace("_", "-")
            if isinstance(value, bool):
                args.append(flag if value else "--no-" + flag[2:])
            else:
                args += [flag, str(value)]
    return shlex.join(args)


def run_load(
    cfg: LoadConfig, sender: SenderOptions | None = None, *, make_input: MakeInput | None = None,
    write: bool = True, handle_sigint: bool = False, spec: WorkloadSpec | None = None,
) -> LoadRun:
    """Run one open-loop load test (see the module docstring).  ``spec`` skips loading
    ``cfg.workload`` (its overrides still apply)."""
    sender = sender or SenderOptions()
    if spec is None:
        spec = resolve_spec(cfg)
    else:
        spec = prepare_spec(spec, cfg.rate, cfg.duration, cfg.seed, cfg.warmup)
    target = Target.parse(cfg.target)
    if cfg.check_models:
        check_models(target, spec.models)
    meta = run_metadata(command_line(cfg, sender, spec))
    t = time.perf_counter()
    schedule = Schedule.from_spec(spec)
    payloads = Payloads.build(schedule, target, make_input, binary=cfg.binary, seed=spec.seed)
    log.info(
        "%d requests over %.1fs (mean %.1f/s) to %s from %d process(es); %d distinct bodies "
        "built in %.2fs", len(schedule), schedule.duration, spec.mean_rate(), target.url,
        cfg.processes, len(payloads.requests), time.perf_counter() - t,
    )
    progress: list[Progress] = []

    def on_start(counters: Callable[[], np.ndarray], t0: float) -> None:
        if cfg.progress:
            progress.append(Progress(counters, len(schedule), schedule.duration).start(t0))

    try:
        results = run_senders(
            schedule, payloads, target, sender, cfg.processes, on_start, handle_sigint
        )
    finally:
        for p in progress:
            p.stop()
    result = merge_results(results)
    records = build_records(schedule, result, spec.warmup_s, cfg.config_id)
    summary: dict[str, Any] = {
        "version": SUMMARY_VERSION,
        "kind": "load",
        "workload": spec.name,
        "target": target.url,
        "command": meta["command"],
        "started_at": meta["started_at"],
        "servelab": meta["servelab"],
        "processes": cfg.processes,
        "warmup_s": spec.warmup_s,
        **summarize(records, Window(spec.warmup_s, schedule.duration), spec.mean_rate()),
        "options": {**asdict(sender), "binary": cfg.binary, "config_id": cfg.config_id},
        "machine": meta["machine"],
        "spec": spec.to_dict(),
    }
    path = None
    if write:
        from servelab.results import new_run_dir, write_json, write_parquet

        path = Path(cfg.out) if cfg.out else new_run_dir("load")
        path.mkdir(parents=True, exist_ok=True)
        write_parquet(path / "records.parquet", records)
        write_json(path / "summary.json", summary)
    return LoadRun(records, summary, path)


def format_summary(summary: dict[str, Any]) -> str:
    """A short human-readable digest of a summary (milliseconds, as printed tables are)."""
    gen = summary["generator"]
    lag = gen["lag_s"]
    lines = [
        f"{gen['scheduled']} requests to {summary['target']} "
        f"({summary['processes']} process(es)): target {gen['target_rate']:.1f}/s, "
        f"scheduled {gen['scheduled_rate']:.1f}/s, achieved {gen['achieved_rate']:.1f}/s",
        "status: " + "  ".join(f"{k} {v}" for k, v in gen["counts"].items()),
        f"generator lag after warm-up: p50 {lag['p50'] * 1e3:.3f} ms  "
        f"p99 {lag['p99'] * 1e3:.3f} ms  max {lag['max'] * 1e3:.3f} ms",
        f"throughput {summary['throughput']:.1f} req/s ok in the measured window "
        f"{summary['window_s'][0]:g}-{summary['window_s'][1]:g} s",
        f"{'latency (ms, ok)':<20}{'count':>8}{'p50':>9}{'p90':>9}{'p95':>9}{'p99':>9}{'p99.9':>9}",
    ]
    rows = [("overall", summary["latency_s"]), *summary["per_model"].items()]
    for name, s in rows:
        if s.get("n"):
            lines.append(
                f"{name:<20}{s['n']:>8}" + "".join(
                    f"{s[k] * 1e3:>9.2f}" for k in ("p50", "p90", "p95", "p99", "p999")
                )
            )
    for flag in gen["flags"]:
        lines.append(f"FLAG: {flag}")
    return "\n".join(lines)
