"""Live switches under steady traffic: an in-place scheduler change and a move to another
backend process (the old one drained and stopped) lose no request and answer no 5xx."""

from __future__ import annotations

import httpx

from .gateway_helpers import ARMS, GatewayThread, Traffic, wait_until


def test_switches_under_steady_traffic_lose_no_request(gateway: GatewayThread) -> None:
    ctl = gateway.controller
    assert ctl is not None
    start = ctl.arm
    with Traffic(gateway.url, threads=3, period=0.01) as traffic:
        traffic.wait_for(30)
        inplace = gateway.switch(start ^ 1)
        n = len(traffic.statuses)
        traffic.wait_for(n + 30)
        other = 2 if start < 2 else 0
        moved = gateway.switch(other)
        n = len(traffic.statuses)
        traffic.wait_for(n + 60)
    assert inplace["kind"] == "inplace" and inplace["to"] == start ^ 1
    assert moved["kind"] in ("new", "warm") and moved["to"] == other, moved
    assert ctl.arms[ctl.arm].config.concurrency == ARMS[other].config.concurrency
    assert traffic.failures == [], traffic.failures[:3]
    bad = [s for s in traffic.statuses if s != 200]
    assert bad == [], f"{len(bad)} of {len(traffic.statuses)} requests failed: {set(bad)}"
    # max_warm=1: the old process was drained (nothing in flight) and stopped.
    gateway_meta = httpx.get(f"{gateway.url}/servelab/meta", timeout=30).json()
    assert [b["config"]["concurrency"] for b in gateway_meta["backends"]] == \
        [ARMS[other].config.concurrency]
    wait_until(lambda: any(t.step == "drain" for t in ctl.pool.timings), 30, "the old drained")
    assert inplace["reason"] and moved["reason"] and moved["features"]["rate"] > 0
    updated = {arm for arm, _ in gateway.policy.updates}
    assert start in updated, "the policy learns from the gateway's own windows"
