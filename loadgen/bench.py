"""The benchmark behind ``servelab bench load``: how fast can the generator send, and how late does it send?

Starts the stub OIP server (:mod:`.stub`) in its own process on 127.0.0.1, runs the open-loop
generator against it at ``--rate`` (2,000 req/s by default: the capacity target) once per
``--processes`` value, and reports the achieved rate and the generator lag (actual − intended
send) percentiles after warm-up.  A row meets the target when it sent at least 98% of the
target rate with lag p99 <= 1 ms.  Results go to ``results/bench-load-<timestamp>/``: one
sub-folder per run (records + summary) and a ``summary.json`` with the table.

``--server servelab`` drives a real servelab server instead of the stub: ``servelab serve``
(async, inline on the event loop, the ``noop`` model: the fastest real request path — uvicorn,
the front door, OIP decoding, the engine, the OIP reply), with the workload's arrival shape
sent to ``noop`` — so the generator's lag is measured against a server that parses what it
is sent and answers at its own pace.

The server shares the machine with the generator (and with whatever else runs there); the
machine's load average at the start is recorded with the results.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from servelab.core.config import ServerConfig, opt, to_flags
from servelab.core.workload import SizeDist
from servelab.loadgen.generator import SenderOptions
from servelab.loadgen.payloads import servable_make_input
from servelab.loadgen.runner import LoadConfig, run_load
from servelab.loadgen.stub import StubConfig, StubProcess
from servelab.machine import machine_metadata
from servelab.reproduce import run_metadata
from servelab.results import new_run_dir, write_json

SERVERS = ("stub", "servelab")


@dataclass(frozen=True)
class BenchConfig:
    """The ``servelab bench load`` flags."""

    rate: float = opt(2000.0, "target mean rate per second")
    duration: float = opt(10.0, "seconds per run")
    warmup: float = opt(1.0, "seconds excluded from the figures")
    processes: tuple[int, ...] = opt((1, 2), "sender process counts to measure, one run each")
    workload: str = opt("fast-only", "workload whose mix, sizes and arrival shape are used")
    binary: bool = opt(False, "send tensors with the binary-data extension")
    delay_ms: float = opt(0.0, "stub server delay per request")
    server: str = opt("stub", "what the generator drives: the stub (answers at once), or a "
                      "real servelab server (async, inline, the noop model)", SERVERS)
    realtime: bool = opt(False, "run the senders under SCHED_FIFO (see servelab load --realtime)")
    out: str | None = opt(None, "output folder (None = results/bench-load-<timestamp>)")


def bench(cfg: BenchConfig, progress: bool = True) -> dict[str, Any]:
    out = Path(cfg.out) if cfg.out else new_run_dir("bench-load")
    out.mkdir(parents=True, exist_ok=True)
    machine = machine_metadata()
    rows = []
    workload = cfg.workload if cfg.server == "stub" else noop_workload(cfg.workload, out)
    with _server(cfg, out) as srv:
        for p in cfg.processes:
            load = LoadConfig(
                workload=workload, target=srv.url, rate=cfg.rate, duration=cfg.duration,
                warmup=cfg.warmup, processes=p, binary=cfg.binary, out=str(out / f"p{p}"),
                progress=progress,
            )
            s = run_load(load, SenderOptions(realtime=cfg.realtime), make_input=(
                None if cfg.server == "stub" else servable_make_input("tiny"))).summary
            gen = s["generator"]
            lag, lat = gen["lag_s"], s["latency_s"]
            rows.append({
                "processes": p,
                "target_rate": gen["target_rate"],
                "scheduled_rate": gen["scheduled_rate"],
                "achieved_rate": gen["achieved_rate"],
                "lag_p50_s": lag["p50"], "lag_p99_s": lag["p99"],
                "lag_p999_s": lag["p999"], "lag_max_s": lag["max"],
                "ok": gen["counts"]["ok"], "requests": gen["scheduled"],
                "latency_p50_s": lat["p50"], "latency_p99_s": lat["p99"],
                "meets_target": bool(
                    gen["achieved_rate"] >= 0.98 * gen["target_rate"] and gen["lag_p99_ok"]
                ),
                "run": str(out / f"p{p}"),
            })
    command = shlex.join(["servelab", "bench", "load", *to_flags(replace(cfg, out=None))])
    result = {
        "kind": "bench-load", **run_metadata(command, machine), "config": asdict(cfg),
        "runs": rows,
    }
    write_json(out / "summary.json", result)
    result["path"] = str(out)
    return result


def noop_workload(name: str, out: Path) -> str:
    """``name``'s arrival shape and duration, every request to the ``noop`` model (a workload
    file under ``out``)."""
    from servelab.workloads import load_workload

    spec = load_workload(name)
    noop = replace(spec, name=f"{spec.name}-noop", mix={"noop": 1.0},
                               sizes={"noop": SizeDist()})
    path = out / "workload-noop.json"
    write_json(path, noop.to_dict())
    return str(path)


def _server(cfg: BenchConfig, out: Path) -> Any:
    """The server the generator drives (a context manager with ``url``)."""
    if cfg.server == "stub":
        return StubProcess(StubConfig(delay_ms=cfg.delay_ms))
    from servelab.servers.base import ServeOptions
    from servelab.servers.launch import ServerProcess

    config = ServerConfig(concurrency="async", offload="inline", workers=1, models=("noop",),
                          queue_capacity=1024)
    return ServerProcess(config, ServeOptions(port=0, variant="tiny"), log=out / "server.log")


def format_table(result: dict[str, Any]) -> str:
    lines = [
        f"{'procs':>5} {'target/s':>9} {'achieved/s':>10} {'lag p50':>8} {'lag p99':>8} "
        f"{'lag p99.9':>9} {'lag max':>8} {'ok':>7} {'lat p50':>8} {'lat p99':>8}  target met",
    ]
    for r in result["runs"]:
        ms = [r[k] * 1e3 for k in ("lag_p50_s", "lag_p99_s", "lag_p999_s", "lag_max_s")]
        lines.append(
            f"{r['processes']:>5} {r['target_rate']:>9.0f} {r['achieved_rate']:>10.1f} "
            f"{ms[0]:>8.3f} {ms[1]:>8.3f} {ms[2]:>9.3f} {ms[3]:>8.3f} {r['ok']:>7} "
            f"{r['latency_p50_s'] * 1e3:>8.3f} {r['latency_p99_s'] * 1e3:>8.3f}  "
            f"{'yes' if r['meets_target'] else 'NO'}"
        )
    lines.append("(lag and latency in ms, after warm-up; lag = actual - intended send time)")
    lines.append(f"machine load average at start: {result['machine']['loadavg']}")
    return "\n".join(lines)
