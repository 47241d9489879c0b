"""A switch to a *process* backend under traffic (the other switch tests move between thread
and event-loop backends): the worker processes start while the old backend serves, then take
every new request — none is lost or answered 5xx — and the move back drains and stops them."""

from __future__ import annotations

from servelab.core.config import ServerConfig
from servelab.meta.arms import ArmSet

from .gateway_helpers import GatewayThread, Traffic, wait_until

PROCESS_ARMS = ArmSet([
    ServerConfig(concurrency="threads", workers=1, models=("noop",)),
    ServerConfig(concurrency="processes", workers=2, models=("noop",)),
])


def test_switch_to_worker_processes_and_back_loses_no_request() -> None:
    gw = GatewayThread(window_s=0.25, max_warm=1, arms=PROCESS_ARMS).start()
    try:
        ctl = gw.controller
        assert ctl is not None
        with Traffic(gw.url, threads=3, period=0.01) as traffic:
            traffic.wait_for(30)
            there = gw.switch(1, timeout=90)
            served = len(traffic.statuses)
            traffic.wait_for(served + 60)  # answered by the worker processes
            pids = {b["key"]: b for b in ctl.pool.describe()}
            back = gw.switch(0, timeout=90)
            n = len(traffic.statuses)
            traffic.wait_for(n + 30)
        assert there["kind"] == "new" and there["to"] == 1, there
        assert back["kind"] == "new" and back["to"] == 0, back
        assert [c["concurrency"] for c in (b["config"] for b in pids.values())] == ["processes"]
        assert traffic.failures == [], traffic.failures[:3]
        bad = [s for s in traffic.statuses if s != 200]
        assert bad == [], f"{len(bad)} of {len(traffic.statuses)} requests failed: {set(bad)}"
        # max_warm=1: each old backend was drained and stopped once the new one served.
        wait_until(lambda: sum(t.step == "drain" for t in ctl.pool.timings) >= 2, 60,
                   "both old backends drained")
        assert there["reason"] and back["reason"]
    finally:
        gw.stop()
