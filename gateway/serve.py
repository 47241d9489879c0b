"""The adaptive gateway as a library: :class:`GatewayConfig`, :func:`load_policy` and
:func:`serve`.  What it does, and what a switch does, is told where it is run from:
``servelab gateway`` (gateway/cmd_gateway.py), which serves until SIGTERM / SIGINT.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servelab.core.bandits.base import BanditPolicy
from servelab.core.config import opt
from servelab.gateway.backends import BackendPool
from servelab.gateway.controller import Controller
from servelab.gateway.metrics import GatewayMetrics
from servelab.gateway.proxy import GatewayServer
from servelab.gateway.windows import WindowCollector
from servelab.meta.arms import ArmSet, load_arms
from servelab.servers.base import ServeOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GatewayConfig:
    """The flags of ``servelab gateway``."""

    arms: str | None = opt(None, "arm file (YAML/JSON, see meta/arms.py); default: the 36 "
                           "default arms")
    policy: str = opt("switch_aware:inner=ucb1", "policy file from servelab meta train (its "
                      "trained state is the prior) or a policy spec NAME[:key=value,...]")
    prior: str | None = opt(None, "with a policy file holding several policies: which one "
                            "(its spec; default: the first)")
    profile: str | None = opt(None, "profile JSON (classes unknown models fast/medium/slow)")
    window_s: float = opt(1.0, "decision window, seconds")
    max_warm: int = opt(2, "most backends kept warm (started and ready) at once")
    memory_mb: float | None = opt(None, "also retire idle backends while all warm ones use "
                                  "more resident memory than this (MiB)")
    start_arm: int | None = opt(None, "arm index to start on (default: the policy's pick)")
    host: str = opt("127.0.0.1", "address to bind")
    port: int = opt(8080, "TCP port (0 = any free port)")
    variant: str = opt("full", "backends' model size", ("full", "tiny"))
    weights_dir: str | None = opt(None, "backends' folder of <model>.pt state dicts")
    drain_timeout_s: float = opt(30.0, "how long a retired backend may take to drain")
    seed: int = opt(0, "seed of a fresh policy")
    log_dir: str | None = opt(None, "folder for the backends' logs (default: discarded)")
    max_inflight: int | None = opt(None, "inference requests in flight through the gateway "
                                   "beyond which it answers 503 + Retry-After itself (default: "
                                   "what the serving backend admits, queue_capacity + workers "
                                   "x max_batch; 0: no cap)")


def load_policy(spec: str, arms: ArmSet, prior: str | None, seed: int,
                window_s: float) -> tuple[BanditPolicy, str]:
    """The policy and a description of where it came from: a policy file (the trained state
    of ``prior``, or of its first policy) or a fresh policy spec."""
    from servelab.meta.policies import load_policy as from_state
    from servelab.meta.policies import make_policy

    path = Path(spec)
    if not (path.suffix == ".json" or path.exists()):
        return make_policy(spec, len(arms), seed), f"fresh {spec}"
    from servelab.meta.train import load_policy_file

    data = load_policy_file(path, arms)
    policies = data["policies"]
    key = prior if prior is not None else next(iter(policies))
    if key not in policies:
        raise ValueError(f"{path}: no policy {key!r}; it holds {', '.join(policies)}")
    if abs(float(data.get("window_s", window_s)) - window_s) > 1e-9:
        log.warning("%s was trained on %g s windows, the gateway decides every %g s",
                    path, data["window_s"], window_s)
    return from_state(policies[key]["policy"]), f"{path} ({key}, trained in simulation)"


async def serve(cfg: GatewayConfig, stop: asyncio.Event,
                on_ready: Any = None) -> Controller:
    """Run the gateway until ``stop`` is set; then stop intake and drain every backend."""
    from servelab.core.profile import load_profile

    arms = load_arms(cfg.arms)
    policy, source = load_policy(cfg.policy, arms, cfg.prior, cfg.seed, cfg.window_s)
    options = ServeOptions(port=0, variant=cfg.variant, weights_dir=cfg.weights_dir,
                           drain_timeout_s=cfg.drain_timeout_s)
    pool = BackendPool(options, cfg.max_warm, cfg.memory_mb,
                       Path(cfg.log_dir) if cfg.log_dir else None)
    metrics = GatewayMetrics()
    profile = load_profile(cfg.profile) if cfg.profile else None
    ctl = Controller(arms, policy, pool, metrics, WindowCollector(profile), cfg.window_s,
                     cfg.start_arm, policy_source=source)
    front = GatewayServer(ctl, metrics, max_inflight=cfg.max_inflight)
    try:
        await ctl.start()
        await front.start(cfg.host, cfg.port)
        print(f"servelab gateway: {len(arms)} arms, policy {source}, serving "
              f"{ctl.arms[ctl.arm].label}; ready at http://{cfg.host}:{front.port} "
              f"(dashboard: /dashboard)", flush=True)
        if on_ready is not None:
            on_ready(front, ctl)
        await stop.wait()
    finally:
        await front.close()
        await ctl.close()
    return ctl
