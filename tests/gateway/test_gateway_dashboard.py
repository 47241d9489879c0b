"""The dashboard in a real browser: headless Chromium (the Debian package ``chromium``) loads
``/dashboard`` while traffic flows through the gateway; the test checks that the charts keep
updating, that a live switch shows up as a marker and in the switch table, and saves a
screenshot under ``results/``.  Chromium is driven over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: JSON messages, NUL-separated, on fds 3 and 4) — no websocket
library, no playwright."""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path
from typing import Any

from chromium_driver import Browser, chromium_or_skip

from servelab.results import new_run_dir

from .gateway_helpers import GatewayThread, Traffic, wait_until

STATE = "JSON.stringify(window.servelabDashboard || null)"
INK = """(() => {  // non-background pixels drawn on a canvas
  const c = document.getElementById(%r), d = c.getContext('2d')
    .getImageData(0, 0, c.width, c.height).data;
  let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; })()"""


def test_dashboard_updates_and_shows_a_switch_in_headless_chromium(
        gateway: GatewayThread) -> None:
    binary = chromium_or_skip("the dashboard's browser test")
    ctl = gateway.controller
    assert ctl is not None
    with tempfile.TemporaryDirectory() as profile, Traffic(gateway.url, threads=2) as traffic:
        traffic.wait_for(20)
        browser = Browser(binary, profile)
        try:
            browser.page("Emulation.setDeviceMetricsOverride",
                         {"width": 1000, "height": 1500, "deviceScaleFactor": 1,
                          "mobile": False})
            browser.page("Page.navigate", {"url": f"{gateway.url}/dashboard"})

            def state() -> dict[str, Any]:
                return json.loads(browser.eval(STATE) or "null") or {}

            wait_until(lambda: state().get("updates", 0) >= 2, 30, "the dashboard's first draws")
            before = state()
            target = ctl.arm ^ 1  # an in-place scheduler change: quick, and a marker
            switch = gateway.switch(target)
            wait_until(lambda: switch["to_label"] in (browser.eval(
                "document.getElementById('switches').innerText") or ""), 30,
                "the switch in the dashboard's table")
            wait_until(lambda: state().get("markers", 0) >= 1, 30, "a switch marker")
            after = state()
            assert after["updates"] > before["updates"]
            assert after["lastT"] > before["lastT"], "new windows reached the charts"
            for canvas in ("chart-latency", "chart-throughput", "chart-mix", "chart-arms"):
                assert browser.eval(INK % canvas) > 100, f"{canvas} is blank"
            assert browser.eval("document.getElementById('current').textContent") == \
                ctl.arms[target].label
            shot = browser.page("Page.captureScreenshot", {"format": "png"})["data"]
        finally:
            browser.close()
    out: Path = new_run_dir("gateway-dashboard")
    (out / "dashboard.png").write_bytes(base64.b64decode(shot))
    assert (out / "dashboard.png").stat().st_size > 10_000
    assert all(s == 200 for s in traffic.statuses)
