"""Shared by the gateway tests: a policy the test steers, a live gateway on its own event-loop
thread over cheap backends (noop model, tiny variant), and steady background traffic."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import numpy as np

from servelab.core.bandits.base import BanditPolicy, Context
from servelab.core.config import ServerConfig
from servelab.gateway.backends import BackendPool
from servelab.gateway.controller import Controller
from servelab.gateway.metrics import GatewayMetrics
from servelab.gateway.proxy import GatewayServer
from servelab.meta.arms import ArmSet
from servelab.servers.base import ServeOptions
from servelab.servers.oip import encode_request

ARMS = ArmSet([
    ServerConfig(concurrency="threads", workers=1, scheduler="fifo", models=("noop",)),
    ServerConfig(concurrency="threads", workers=1, scheduler="sjf", models=("noop",)),
    ServerConfig(concurrency="async", workers=1, offload="thread", models=("noop",)),
    ServerConfig(concurrency="async", workers=1, offload="thread", scheduler="sjf",
                 models=("noop",)),
])
"""Arms ``a`` and ``a ^ 1`` differ only in the scheduler (an in-place change); threads (0, 1)
and async (2, 3) are different backend processes."""

NOOP_BODY, NOOP_HEADERS = encode_request({"input": np.arange(16, dtype=np.float32)[None, :]})


class SteeredPolicy(BanditPolicy):
    """Selects ``want`` (set by the test); records every update."""

    name = "steered"

    def __init__(self, n_arms: int, seed: int | None = 0) -> None:
        super().__init__(n_arms, seed)
        self.want = 0
        self.updates: list[tuple[int, float]] = []

    def select(self, context: Context | None = None) -> int:
        self.last_reason = f"the test wants arm {self.want}"
        return self.want

    def update(self, arm: int, reward: float, context: Context | None = None) -> None:
        self.updates.append((arm, reward))

    def values(self) -> np.ndarray:
        v = np.full(self.n_arms, np.nan)
        for arm, reward in self.updates:
            v[arm] = reward
        return v

    def state(self) -> dict[str, Any]:
        return {"want": self.want}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.want = int(state["want"])


class GatewayThread:
    """A gateway (controller + front) running on an event loop in a background thread."""

    def __init__(self, window_s: float = 0.25, max_warm: int = 2, arms: ArmSet = ARMS) -> None:
        self.arms = arms
        self.policy = SteeredPolicy(len(arms))
        self.window_s = window_s
        self.max_warm = max_warm
        self.controller: Controller | None = None
        self.front: GatewayServer | None = None
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="gateway", daemon=True)

    def start(self) -> GatewayThread:
        self.thread.start()
        if not self._ready.wait(120):
            raise TimeoutError("gateway did not start within 120 s")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        pool = BackendPool(ServeOptions(port=0, variant="tiny", drain_timeout_s=10),
                           max_warm=self.max_warm)
        metrics = GatewayMetrics()
        ctl = self.controller = Controller(self.arms, self.policy, pool, metrics,
                                           window_s=self.window_s, start_arm=0)
        front = self.front = GatewayServer(ctl, metrics)
        try:
            await ctl.start()
            await front.start("127.0.0.1", 0)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            await ctl.close()
            return
        self._ready.set()
        await self._stop.wait()
        await front.close()
        await ctl.close()

    @property
    def url(self) -> str:
        assert self.front is not None
        return self.front.url

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(60)

    def switch(self, arm: int, timeout: float = 60.0) -> dict[str, Any]:
        """Steer the policy to ``arm`` and wait for the switch entry (raises on timeout)."""
        assert self.controller is not None
        n = len(self.controller.switches)
        self.policy.want = arm
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if len(self.controller.switches) > n:
                return self.controller.switches[-1]
            time.sleep(0.02)
        raise AssertionError(f"no switch to arm {arm} within {timeout} s")


class Traffic:
    """``threads`` senders, each posting noop inferences every ``period`` seconds on its own
    keep-alive client, until :meth:`stop`; every response status is kept."""

    def __init__(self, url: str, threads: int = 3, period: float = 0.01) -> None:
        self.url, self.period = url, period
        self.statuses: list[int] = []
        self.failures: list[str] = []
        self._halt = threading.Event()
        self._threads = [threading.Thread(target=self._send, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Traffic:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _send(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._halt.is_set():
                try:
                    r = client.post(f"{self.url}/v2/models/noop/infer", content=NOOP_BODY,
                                    headers=NOOP_HEADERS)
                    self.statuses.append(r.status_code)
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                time.sleep(self.period)

    def stop(self) -> None:
        self._halt.set()
        for t in self._threads:
            t.join(60)

    def wait_for(self, n: int, timeout: float = 30.0) -> None:
        wait_until(lambda: len(self.statuses) >= n, timeout, f"{n} responses")


def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
