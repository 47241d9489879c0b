"""The gateway's decision loop: measure a window, teach the policy, pick the next arm, switch.

Every ``window_s`` seconds (default 1):

1. the :class:`~servelab.gateway.windows.WindowCollector` closes the window: the reward (the
   meta-scheduler's own definition, normalised by the offered rate) and the workload features
   (a :class:`~servelab.core.bandits.base.Context`) as the gateway measured them;
2. ``policy.update(arm, reward, context)`` — the arm that served the window, the context the
   arm was chosen in — unless a switch was in progress (the window belongs to no one arm) or
   nothing happened (an idle window teaches nothing);
3. ``policy.select(context)``; a different arm starts a switch in the background while traffic
   keeps flowing to the current backend.

A switch, step by step: (a) same process, other scheduler → ``POST /servelab/config`` on the
current backend, queued requests move into the new policy; (b) otherwise a warm backend of the
new arm is reused (its scheduler set in place if needed) or a new one is started and awaited
until ready — if it fails to start the gateway stays on the old one; (c) new requests go to
the new backend from that instant; (d) the old backend finishes what it holds and stays warm,
or, beyond the warm budget, is drained (no gateway request left in flight) and stopped.  Each
switch is logged with its time, arms, kind, duration, the features that triggered it and a
one-line reason (:mod:`~servelab.gateway.explain`).  Measured start times update a
switch-aware policy's cost matrix, so it weighs the real price of a move.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections import deque
from typing import Any

import numpy as np

from servelab.core.bandits.base import BanditPolicy, Context
from servelab.gateway.backends import Backend, BackendPool, process_key
from servelab.gateway.explain import explain
from servelab.gateway.metrics import GatewayMetrics
from servelab.gateway.windows import WindowCollector, WindowStats
from servelab.meta.arms import ArmSet

log = logging.getLogger(__name__)


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


class Controller:
    """Owns the arms, the policy, the warm backends and the record of what happened."""

    def __init__(self, arms: ArmSet, policy: BanditPolicy, pool: BackendPool,
                 metrics: GatewayMetrics, collector: WindowCollector | None = None,
                 window_s: float = 1.0, start_arm: int | None = None,
                 history: int = 3600, policy_source: str = "") -> None:
        if policy.n_arms != len(arms):
            raise ValueError(f"the policy has {policy.n_arms} arms, the arm list {len(arms)}")
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.arms, self.policy, self.pool, self.metrics = arms, policy, pool, metrics
        self.collector = collector or WindowCollector()
        self.window_s = window_s
        self.policy_source = policy_source
        self.start_arm = start_arm
        self.arm = -1
        self._current: Backend | None = None
        self.windows: deque[WindowStats] = deque(maxlen=history)
        self.switches: list[dict[str, Any]] = []
        self.live_n = np.zeros(len(arms), dtype=int)
        self.live_sum = np.zeros(len(arms))
        self.decided_in = Context()
        self.decided_window: WindowStats | None = None
        self._switch: asyncio.Task[None] | None = None
        self._switched_in_window = False
        self._loop: asyncio.Task[None] | None = None
        self.cores = os.cpu_count() or 1

    # -- the Router interface -------------------------------------------------------------------
    @property
    def current(self) -> Backend | None:
        return self._current

    # -- life cycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Bring up the first arm's backend (the policy's pick, or ``start_arm``) and start the
        decision loop."""
        first = self.policy.select(self.decided_in)
        arm = first if self.start_arm is None else self.start_arm
        t = time.perf_counter()
        self._current, _ = await self.pool.get(self.arms[arm].config)
        self._set_arm(arm)
        self._log_switch(-1, arm, "start", time.perf_counter() - t, None,
                         f"start on {self.arms[arm].label}", self.policy.last_reason)
        self._loop = asyncio.get_running_loop().create_task(self._run())

    async def close(self, stop_backends: bool = True) -> None:
        """Stop deciding; drain and stop every backend unless ``stop_backends`` is False (the
        pool then stays warm for another controller, as the adaptive demo's runs share one)."""
        tasks = [t for t in (self._loop, self._switch) if t is not None]
        for task in tasks:
            task.cancel()
        # Let a cancelled switch finish its clean-up (a backend it was starting is stopped)
        # before the pool is closed or handed on.
        await asyncio.gather(*tasks, return_exceptions=True)
        if stop_backends:
            await self.pool.close()

    def _set_arm(self, arm: int) -> None:
        self.arm = arm
        self.metrics.arm.set(arm)
        self.metrics.warm.set(sum(1 for b in self.pool.backends.values() if b.state == "ready"))

    async def _run(self) -> None:
        next_edge = time.monotonic() + self.window_s
        while True:
            await asyncio.sleep(max(next_edge - time.monotonic(), 0.0))
            next_edge += self.window_s
            try:
                self.step()
            except Exception:  # the loop must outlive a bad window; the request path is separate
                log.exception("decision window failed")

    # -- one window ----------------------------------------------------------------------------
    def step(self) -> WindowStats:
        """Close the window, learn, decide (see the module docstring)."""
        switching = self._switch is not None or self._switched_in_window
        self._switched_in_window = False
        w = self.collector.cut(self.arm, switching)
        self.windows.append(w)
        for name in ("offered", "throughput", "p50_s", "p99_s", "norm", "cpu"):
            value = getattr(w, name)
            if math.isfinite(value):
                self.metrics.window.labels(name).set(value)
        if w.arrivals == 0 and w.completed == 0:
            return w
        if not switching:
            self.policy.update(self.arm, w.norm, self.decided_in)
            self.live_n[self.arm] += 1
            self.live_sum[self.arm] += w.norm
        if self._switch is None:
            choice = self.policy.select(w.context)
            before, self.decided_in = self.decided_window, w.context
            self.decided_window = w
            if choice != self.arm:
                self._switch = asyncio.get_running_loop().create_task(
                    self.switch_to(choice, before, w))
        return w

    async def switch_to(self, arm: int, before: WindowStats | None,
                        trigger: WindowStats) -> None:
        """Move traffic to ``arm`` (see the module docstring); never raises."""
        old_arm, old = self.arm, self._current
        assert old is not None
        target = self.arms[arm].config
        reason = explain(self.arms[old_arm].config, target, before, trigger, self.cores)
        policy_reason = self.policy.last_reason
        t = time.perf_counter()
        try:
            if process_key(target) == old.key:
                await old.reconfigure(target)
                kind, backend = "inplace", old
            else:
                backend, started = await self.pool.get(target)
                kind = "new" if started else "warm"
            elapsed = time.perf_counter() - t
            self._current = backend
            self._set_arm(arm)
            if backend is not old:
                self.pool.retire_beyond_budget(keep=backend)
            self._learn_cost(old_arm, arm, elapsed if kind == "new" else 0.0)
        except Exception as exc:
            elapsed = time.perf_counter() - t
            kind = "failed"
            reason = f"{reason} — not applied, staying on {self.arms[old_arm].label}: {exc}"
            log.warning("switch to %s failed: %s", self.arms[arm].label, exc)
        finally:
            self._switch = None
            self._switched_in_window = True
        self.metrics.switches.labels(kind).inc()
        self.metrics.switch_seconds.labels(kind).observe(elapsed)
        self._log_switch(old_arm, arm, kind, elapsed, trigger, reason, policy_reason)

    def _learn_cost(self, old: int, new: int, seconds: float) -> None:
        """A switch-aware policy weighs moves by their cost: give it the measured one for
        every move into a new process of this arm's setup."""
        cost = getattr(self.policy, "cost", None)
        if not isinstance(cost, np.ndarray) or cost.shape != (len(self.arms),) * 2:
            return
        key = process_key(self.arms[new].config)
        for a in self.arms:
            if process_key(a.config) != key:
                cost[a.index, new] = seconds

    def _log_switch(self, old: int, new: int, kind: str, seconds: float,
                    trigger: WindowStats | None, reason: str, policy_reason: str) -> None:
        entry = {
            "t": round(self.collector.now(), 3), "from": old, "to": new,
            "from_label": self.arms[old].label if old >= 0 else None,
            "to_label": self.arms[new].label, "kind": kind, "seconds": round(seconds, 4),
            "features": {**trigger.context.to_dict(), "mix": trigger.mix} if trigger else {},
            "reason": reason, "policy_reason": policy_reason,
        }
        self.switches.append(entry)
        log.info("switch %s -> %s (%s, %.3f s): %s", entry["from_label"], entry["to_label"],
                 kind, seconds, reason)

    # -- what the gateway shows ----------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        """``GET /servelab/meta``."""
        values = self.policy.values()
        arms = []
        for a in self.arms:
            n = int(self.live_n[a.index])
            arms.append({
                "arm": a.index, "id": a.id, "label": a.label,
                "estimate": _finite(float(values[a.index])), "live_windows": n,
                "live_mean_reward": _finite(self.live_sum[a.index] / n) if n else None,
            })
        cur = self.arms[self.arm] if self.arm >= 0 else None
        return {
            "current": None if cur is None else {
                "arm": cur.index, "id": cur.id, "label": cur.label,
                "config": cur.config.to_dict(),
                "backend": self._current.url if self._current is not None else None},
            "switching": self._switch is not None,
            "policy": {"name": self.policy.name, "source": self.policy_source,
                       "last_reason": self.policy.last_reason},
            "window_s": self.window_s, "windows": len(self.windows), "arms": arms,
            # Switch and window times are seconds from this CLOCK_MONOTONIC instant: a client
            # on the same machine lines them up with its own records.
            "clock_monotonic_t0": self.collector.t_start,
            "switches": self.switches[-200:], "backends": self.pool.describe(),
            "timings": [t.__dict__ for t in self.pool.timings[-200:]],
        }

    def timeseries(self, n: int) -> list[dict[str, Any]]:
        """``GET /servelab/timeseries``: the last ``n`` windows."""
        return [w.to_dict() for w in list(self.windows)[-n:]]
