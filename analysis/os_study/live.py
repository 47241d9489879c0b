"""Live runs for the OS study: a server of one setup as a subprocess, a fixed open-loop load
against it on 127.0.0.1, and the process ids whose counters the study reads.

Every live run is bounded: a fixed number of requests over a fixed time.  Where
``$SERVELAB_QUIET_FILE`` names a file, a live run first waits (up to :data:`QUIET_MAX_S`) while
that file exists — a way for jobs sharing a machine to ask one another for quiet; unset, nothing
waits.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

QUIET_ENV = "SERVELAB_QUIET_FILE"
QUIET_MAX_S = 600.0


def quiet_file() -> Path | None:
    """The file whose existence asks live runs to wait (``$SERVELAB_QUIET_FILE``), if any."""
    name = os.environ.get(QUIET_ENV)
    return Path(name) if name else None


def wait_quiet(path: Path | None = None, poll_s: float = 15.0,
               max_s: float = QUIET_MAX_S) -> None:
    path = path if path is not None else quiet_file()
    end = time.monotonic() + max_s
    while path is not None and path.exists():
        if time.monotonic() >= end:
            log.warning("%s still exists after %.0f s: measuring anyway", path, max_s)
            return
        log.info("waiting: %s exists ($%s)", path, QUIET_ENV)
        time.sleep(poll_s)


def workload(mix: Mapping[str, float], rate: float, seconds: float, seed: int = 0,
             sizes: Mapping[str, int] | None = None) -> Any:
    from servelab.core.workload import ArrivalSpec, SizeDist, WorkloadSpec

    return WorkloadSpec(
        name="os-study", duration=seconds, warmup_s=0.0, seed=seed,
        arrival=ArrivalSpec(kind="poisson", rate=rate), mix=dict(mix),
        sizes={m: SizeDist(kind="fixed", value=v) for m, v in (sizes or {}).items()},
    )


def drive(url: str, spec: Any, variant: str = "tiny", timeout_s: float = 30.0) -> pd.DataFrame:
    """Send ``spec`` open loop to ``url``; the per-request records (latency from the intended
    send time, status)."""
    from servelab.loadgen.accounting import build_records, merge_results
    from servelab.loadgen.generator import SenderOptions
    from servelab.loadgen.payloads import Payloads, Target, servable_make_input
    from servelab.loadgen.processes import run_senders
    from servelab.loadgen.schedule import Schedule

    schedule = Schedule.from_spec(spec)
    target = Target.parse(url)
    payloads = Payloads.build(schedule, target, servable_make_input(variant), seed=spec.seed)
    results = run_senders(schedule, payloads, target, SenderOptions(timeout=timeout_s))
    return build_records(schedule, merge_results(results), 0.0, "")


@contextmanager
def server(setup: str, variant: str, models: tuple[str, ...], workers: int = 2,
           log_path: Path | None = None, watchdog_s: float | None = None,
           **config: Any) -> Iterator[Any]:
    """A ``servelab serve`` subprocess of a named setup (``threads``, ``processes``,
    ``async-inline`` ...), stopped on exit."""
    from servelab.core.config import ServerConfig
    from servelab.servers.base import SETUPS, ServeOptions
    from servelab.servers.launch import ServerProcess

    wait_quiet()
    cfg = ServerConfig(**{**SETUPS[setup], "workers": workers, "models": models,
                          "queue_capacity": 1024, **config})
    opts: dict[str, Any] = {"port": 0, "variant": variant, "drain_timeout_s": 5.0}
    if watchdog_s is not None:
        opts["watchdog_s"] = watchdog_s
    with ServerProcess(cfg, ServeOptions(**opts), log=log_path, stop_timeout=15.0) as srv:
        yield srv


def server_pids(srv: Any) -> dict[str, list[int]]:
    """``{"server": [pid], "workers": [worker pids], "zygote": [pid]}`` (the last two empty for
    in-process executors)."""
    stats = srv.get("/servelab/stats")
    workers = [int(w["pid"]) for w in stats.get("workers", []) if w.get("pid")]
    zygote = stats.get("zygote", {}).get("pid")
    return {"server": [srv.proc.pid], "workers": workers,
            "zygote": [int(zygote)] if zygote else []}


def ok_latencies(rec: pd.DataFrame) -> pd.Series:
    return rec.loc[rec["status"] == "ok", "latency"]
