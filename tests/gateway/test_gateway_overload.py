"""Overload is refused at the gateway's door: beyond what the serving backend admits (or
``max_inflight``) a request gets 503 + Retry-After at once and never reaches the backend."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from servelab.core.config import ServerConfig
from servelab.gateway.metrics import GatewayMetrics
from servelab.gateway.proxy import GatewayServer, response
from servelab.gateway.windows import WindowCollector

from .gateway_helpers import NOOP_BODY, NOOP_HEADERS


class SlowBackend:
    """Answers every request 200 after ``delay`` seconds; counts what reached it."""

    state = "ready"
    url = "fake://slow"

    def __init__(self, config: ServerConfig, delay: float) -> None:
        self.config, self.delay, self.seen = config, delay, 0

    async def request(self, data: bytes) -> tuple[int, bytes, bool]:
        self.seen += 1
        await asyncio.sleep(self.delay)
        return 200, response(200, b'{"outputs": []}'), True


class Router:
    def __init__(self, backend: SlowBackend) -> None:
        self.collector = WindowCollector()
        self.current = backend

    def meta(self) -> dict[str, object]:
        return {}

    def timeseries(self, n: int) -> list[dict[str, object]]:
        return []


async def _burst(max_inflight: int | None, config: ServerConfig, n: int) -> tuple[
        list[httpx.Response], SlowBackend, float]:
    backend = SlowBackend(config, delay=0.5)
    front = await GatewayServer(Router(backend), GatewayMetrics(),  # type: ignore[arg-type]
                                max_inflight=max_inflight).start("127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            t = time.perf_counter()

            async def one() -> tuple[httpx.Response, float]:
                r = await client.post(f"{front.url}/v2/models/noop/infer", content=NOOP_BODY,
                                      headers=NOOP_HEADERS)
                return r, time.perf_counter() - t

            done = await asyncio.gather(*(one() for _ in range(n)))
    finally:
        await front.close()
    refused_at = max((s for r, s in done if r.status_code == 503), default=0.0)
    return [r for r, _ in done], backend, refused_at


@pytest.mark.parametrize("max_inflight, config, cap", [
    (3, ServerConfig(models=("noop",)), 3),
    (None, ServerConfig(models=("noop",), workers=1, queue_capacity=2), 3),
])
def test_beyond_capacity_the_gateway_answers_503_with_retry_after(
        max_inflight: int | None, config: ServerConfig, cap: int) -> None:
    answers, backend, refused_at = asyncio.run(_burst(max_inflight, config, 8))
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] * cap + [503] * (8 - cap)
    assert backend.seen == cap, "refused requests never reach the backend"
    refusals = [r for r in answers if r.status_code == 503]
    assert all(r.headers["Retry-After"] == "1" for r in refusals)
    assert "capacity" in refusals[0].json()["error"]
    assert refused_at < 0.4, "refused at once, not after the backend's 0.5 s"


def test_no_cap_forwards_everything() -> None:
    answers, backend, _ = asyncio.run(_burst(0, ServerConfig(models=("noop",)), 8))
    assert [r.status_code for r in answers] == [200] * 8 and backend.seen == 8
