"""asyncio costs: loop work per request, the hand-off to an executor thread, and the extra stall
when inference runs inline on the loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def _noop() -> None:
    return None


async def _per_request(n: int) -> float:
    t = time.perf_counter()
    await asyncio.gather(*(asyncio.ensure_future(_noop()) for _ in range(n)))
    return (time.perf_counter() - t) / n


async def _handoff(n: int, pool: ThreadPoolExecutor) -> float:
    loop = asyncio.get_running_loop()
    t = time.perf_counter()
    for _ in range(n):
        await loop.run_in_executor(pool, int)
    return (time.perf_counter() - t) / n


async def _inline_block(block_s: float) -> float:
    """A timer due in 1 ms while the loop is blocked for ``block_s``: how late past the block
    does it fire?"""
    loop = asyncio.get_running_loop()
    fired = loop.create_future()
    t0 = time.perf_counter()
    loop.call_later(0.001, lambda: fired.set_result(time.perf_counter()))
    _spin(block_s)
    end_block = time.perf_counter()
    t_fire = await fired
    del t0
    return max(t_fire - end_block, 0.0)


def measure(params: Mapping[str, Any], warmups: int, samples: int) -> dict[str, Any]:
    n = int(params.get("n", 2000))
    block_s = float(params.get("block_ms", 10.0)) / 1e3

    async def main() -> dict[str, list[float]]:
        pool = ThreadPoolExecutor(max_workers=1)
        out: dict[str, list[float]] = {"per_request": [], "handoff": [], "inline_block": []}
        for i in range(warmups + samples):
            pr, ho = await _per_request(n), await _handoff(n // 4 or 1, pool)
            ib = await _inline_block(block_s)
            if i >= warmups:
                out["per_request"].append(pr)
                out["handoff"].append(ho)
                out["inline_block"].append(ib)
        pool.shutdown()
        return out

    res = asyncio.run(main())
    return {"samples": res["per_request"], **res}
