"""The adaptive demo's live runs: a gateway on a thread of its own over one shared backend pool,
a workload sent open loop through it, and the run's record (client records, the gateway's
explanation, the two clocks' offset).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import pandas as pd

from servelab.core.bandits.base import BanditPolicy
from servelab.core.profile import Profile
from servelab.core.workload import WorkloadSpec
from servelab.gateway.backends import BackendPool, process_key
from servelab.gateway.controller import Controller
from servelab.gateway.metrics import GatewayMetrics
from servelab.gateway.proxy import GatewayServer
from servelab.gateway.windows import WindowCollector
from servelab.meta.arms import ArmSet
from servelab.servers.base import ServeOptions

if TYPE_CHECKING:
    from servelab.analysis.adaptive_demo import DemoConfig

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class RunResult:
    """One live run: the client's records, the gateway's explanation and where time 0 was."""

    name: str
    kind: str  # "adaptive" | "static"
    records: pd.DataFrame
    meta: dict[str, Any]
    windows: list[dict[str, Any]]
    offset_s: float  # gateway time = client time + offset_s
    switches: list[dict[str, Any]] = field(default_factory=list)


class GatewayRig:
    """The gateway's event loop on a thread, and one :class:`BackendPool` every run shares."""

    def __init__(self, options: ServeOptions, max_warm: int, log_dir: Path | None) -> None:
        self.pool = BackendPool(options, max_warm=max_warm, log_dir=log_dir)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="gateway", daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 300.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def open(self, arms: ArmSet, policy: BanditPolicy, profile: Profile | None,
                   window_s: float, source: str) -> tuple[Controller, GatewayServer]:
        metrics = GatewayMetrics()
        ctl = Controller(arms, policy, self.pool, metrics, WindowCollector(profile), window_s,
                         policy_source=source)
        front = GatewayServer(ctl, metrics)
        await ctl.start()
        await front.start("127.0.0.1", 0)
        return ctl, front

    async def prewarm(self, arms: ArmSet) -> None:
        """Start one backend per server process the arms need, in parallel."""
        first = {process_key(a.config): a.config for a in reversed(arms)}
        await asyncio.gather(*(self.pool.get(c) for c in first.values()))

    async def close_run(self, ctl: Controller, front: GatewayServer) -> None:
        await front.close()
        await ctl.close(stop_backends=False)  # a switch still in flight is cancelled

    def close(self) -> None:
        try:
            self.call(self.pool.close(), timeout=120)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(30)


def send(spec: WorkloadSpec, url: str, variant: str, config_id: str) -> tuple[pd.DataFrame, float]:
    """Send ``spec`` open loop to ``url``; the per-request records and their time 0
    (CLOCK_MONOTONIC)."""
    from servelab.loadgen.accounting import build_records, merge_results
    from servelab.loadgen.generator import SenderOptions
    from servelab.loadgen.payloads import Payloads, Target, zoo_make_input
    from servelab.loadgen.processes import run_senders
    from servelab.loadgen.schedule import Schedule

    target = Target.parse(url)
    schedule = Schedule.from_spec(spec)
    payloads = Payloads.build(schedule, target, zoo_make_input(variant), seed=spec.seed)
    result = merge_results(run_senders(schedule, payloads, target, SenderOptions(), 1))
    return build_records(schedule, result, spec.warmup_s, config_id), float(result.t0)


def warm_spec(spec: WorkloadSpec, seconds: float) -> WorkloadSpec:
    """``seconds`` of every model of ``spec`` in equal shares, 4 req/s (at least two
    requests), with its input sizes."""
    models = spec.models
    sizes: dict[str, Any] = {}
    for p in spec.effective_phases():
        sizes.update(p.sizes or {})
    return WorkloadSpec.from_dict({
        "name": "warm-up", "duration": seconds, "seed": spec.seed + 1, "sizes": sizes,
        "arrival": {"kind": "constant", "rate": max(4.0, 2.0 / seconds)},
        "mix": {m: 1.0 / len(models) for m in models},
    })


def live_run(rig: GatewayRig, name: str, kind: str, arms: ArmSet, policy: BanditPolicy,
             source: str, spec: WorkloadSpec, cfg: DemoConfig,
             profile: Profile | None) -> RunResult:
    """One run: a gateway over ``arms`` with ``policy``, the workload through it, its record.
    The serving backend first gets ``cfg.warm_s`` of the workload's models sent to it
    directly (not through the gateway, so the policy learns nothing from it): a backend's first
    requests of a model run cold (one-time set-up per input shape), and a backend reused from
    an earlier run would otherwise be warmer than a fresh one."""
    t = time.perf_counter()
    ctl, front = rig.call(rig.open(arms, policy, profile, cfg.window_s, source))
    log.info("%s: gateway ready on %s in %.1f s", name, front.url, time.perf_counter() - t)
    try:
        if cfg.warm_s > 0 and ctl.current is not None:
            send(warm_spec(spec, cfg.warm_s), ctl.current.url, cfg.variant, "warm-up")
        records, t0 = send(spec, front.url, cfg.variant, name)
        with httpx.Client(timeout=30) as client:
            meta = client.get(f"{front.url}/servelab/meta").json()
            windows = client.get(f"{front.url}/servelab/timeseries?n=3600").json()
    finally:
        rig.call(rig.close_run(ctl, front))
    offset = t0 - float(meta["clock_monotonic_t0"])
    switches = [{**s, "t_client": round(s["t"] - offset, 3),
                 "start_client": round(s["t"] - s["seconds"] - offset, 3)}
                for s in meta["switches"] if s["kind"] != "start"]
    return RunResult(name, kind, records, meta, windows, offset, switches)
