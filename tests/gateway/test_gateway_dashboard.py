"""The dashboard in a real browser: headless Chromium (the Debian package ``chromium``) loads
``/dashboard`` while traffic flows through the gateway; the test checks that the charts keep
updating, that a live switch shows up as a marker and in the switch table, and saves a
screenshot under ``results/``.  Chromium is driven over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: JSON messages, NUL-separated, on fds 3 and 4) — no websocket
library, no playwright."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from servelab.results import new_run_dir

from .gateway_helpers import GatewayThread, Traffic, wait_until

INSTALL = "apt-get update && apt-get install -y chromium"


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


LAUNCH = ("import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
          "os.closerange(5, 256); os.execv(sys.argv[3], sys.argv[3:])")


def _high(fds: tuple[int, int]) -> tuple[int, int]:
    """The pipe's ends moved above fd 10, so moving them onto 3 and 4 never collides."""
    out = tuple(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds)
    for fd in fds:
        os.close(fd)
    return out[0], out[1]


class Browser:
    """Headless Chromium with one page, spoken to over the DevTools pipe."""

    def __init__(self, binary: str, profile_dir: str) -> None:
        to_r, self._to_w = _high(os.pipe())  # we write commands, chromium reads them on fd 3
        self._from_r, from_w = _high(os.pipe())  # chromium writes replies on fd 4
        flags = ["--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
                 "--no-first-run", "--disable-extensions", "--hide-scrollbars",
                 f"--user-data-dir={profile_dir}", "about:blank"]
        # A one-line launcher puts the pipe ends on fds 3 and 4 (no preexec_fn: threads run).
        self.log = Path(profile_dir) / "chromium.log"
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-c", LAUNCH, str(to_r), str(from_w),
                                          binary, *flags],
                                         pass_fds=(to_r, from_w), stdout=subprocess.DEVNULL,
                                         stderr=err)
        os.close(to_r)
        os.close(from_w)
        self._buf = b""
        self._id = 0
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None, timeout: float = 30.0) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        end = time.monotonic() + timeout
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply["result"]  # type: ignore[no-any-return]
            left = end - time.monotonic()
            if left <= 0 or not select.select([self._from_r], [], [], left)[0]:
                raise TimeoutError(f"no reply to {method} within {timeout} s")
            chunk = os.read(self._from_r, 1 << 20)
            if not chunk:
                lines = [x for x in self.log.read_text().splitlines() if "dbus" not in x]
                raise RuntimeError("chromium closed the DevTools pipe: " + "\n".join(lines[-5:]))
            self._buf += chunk

    def page(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.call(method, params, self.session)

    def eval(self, expression: str) -> Any:
        out = self.page("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return out["result"].get("value")

    def close(self) -> None:
        for fd in (self._to_w, self._from_r):
            os.close(fd)
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


STATE = "JSON.stringify(window.servelabDashboard || null)"
INK = """(() => {  // non-background pixels drawn on a canvas
  const c = document.getElementById(%r), d = c.getContext('2d')
    .getImageData(0, 0, c.width, c.height).data;
  let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; })()"""


def test_dashboard_updates_and_shows_a_switch_in_headless_chromium(
        gateway: GatewayThread) -> None:
    binary = _chromium()
    if binary is None:
        pytest.skip(f"chromium is not installed, so the dashboard's browser test is skipped; "
                    f"install it with: {INSTALL}")
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
