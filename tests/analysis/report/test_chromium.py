"""``report.html`` in a real browser: headless Chromium (the Debian package ``chromium``) opens
a report built from fake sections with real PNGs; every section and every figure must be
there and every image must decode.  Chromium is driven over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: JSON messages, NUL-separated, on its fds 3 and 4), as the
gateway's dashboard test does."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from servelab.analysis.report.build import build_sections
from servelab.analysis.report.render import ReportInfo, render

from .report_fakes import MACHINE, fake_spec, make_ctx

INSTALL = "apt-get update && apt-get install -y chromium"
LAUNCH = ("import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
          "os.closerange(5, 256); os.execv(sys.argv[3], sys.argv[3:])")


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


class Pipe:
    """One headless Chromium and its DevTools pipe."""

    def __init__(self, binary: str, profile: Path) -> None:
        cmd_r, self.cmd_w = os.pipe()
        self.out_r, out_w = os.pipe()
        flags = ["--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
                 "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
                 "about:blank"]
        self.proc = subprocess.Popen([sys.executable, "-c", LAUNCH, str(cmd_r), str(out_w),
                                      binary, *flags], pass_fds=(cmd_r, out_w),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(cmd_r)
        os.close(out_w)
        self.buf, self.n = b"", 0

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        self.n += 1
        msg: dict[str, Any] = {"id": self.n, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.cmd_w, json.dumps(msg).encode() + b"\0")
        end = time.monotonic() + timeout
        while True:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self.n:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply["result"]  # type: ignore[no-any-return]
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.out_r], [], [], left)[0]:
                raise TimeoutError(f"no reply to {method} within {timeout} s")
            chunk = os.read(self.out_r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self.buf += chunk

    def close(self) -> None:
        os.close(self.cmd_w)
        os.close(self.out_r)
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


PAGE_STATE = """JSON.stringify({
  ready: document.readyState,
  sections: [...document.querySelectorAll('section')].map(s => s.id),
  toc: [...document.querySelectorAll('nav a')].map(a => a.getAttribute('href')),
  figures: [...document.querySelectorAll('figure')].map(f => f.dataset.figure),
  images: [...document.images].map(i => i.complete && i.naturalWidth > 0),
  answers: [...document.querySelectorAll('section .answer')].length,
  reproduce: [...document.querySelectorAll('figcaption code')].map(c => c.textContent),
  failed: [...document.querySelectorAll('section .failed')].length})"""


def test_report_html_renders_every_section_and_figure_in_headless_chromium(tmp_path: Path) -> None:
    binary = _chromium()
    if binary is None:
        pytest.skip(f"chromium is not installed, so the report's browser test is skipped; "
                    f"install it with: {INSTALL}")
    out = tmp_path / "r"
    specs = [fake_spec("gil", 1, figures=2), fake_spec("ctxsw", 2, figures=1),
             fake_spec("bad", 3, fail=True), fake_spec("sched", 4, figures=3)]
    outcomes = build_sections(specs, make_ctx(out))
    render(out, outcomes, ReportInfo(command="servelab report --quick", machine=MACHINE,
                                     profile="p.json", quick=True, variant="full"))
    browser = Pipe(binary, tmp_path / "chromium-profile")
    try:
        target = browser.call("Target.createTarget",
                              {"url": (out / "report.html").resolve().as_uri()})["targetId"]
        session = browser.call("Target.attachToTarget",
                               {"targetId": target, "flatten": True})["sessionId"]
        state: dict[str, Any] = {}
        end = time.monotonic() + 20
        while time.monotonic() < end:
            res = browser.call("Runtime.evaluate", {"expression": PAGE_STATE,
                                                    "returnByValue": True}, session)
            state = json.loads(res["result"].get("value") or "{}")
            if state.get("ready") == "complete" and state["images"] and all(state["images"]):
                break
            time.sleep(0.1)
    finally:
        browser.close()
    assert state["sections"] == ["sec-gil", "sec-ctxsw", "sec-bad", "sec-sched"]
    figs = ["gil-fig0", "gil-fig1", "ctxsw-fig0", "sched-fig0", "sched-fig1", "sched-fig2"]
    assert state["figures"] == figs
    assert state["images"] == [True] * len(figs)  # every embedded PNG decoded
    assert [h for h in state["toc"] if h.startswith("#sec-")] == [f"#{s}" for s in state["sections"]]
    assert [h for h in state["toc"] if h.startswith("#fig-")] == [f"#fig-{f}" for f in figs]
    assert state["answers"] == 3 and state["failed"] == 1
    assert state["reproduce"][0] == "servelab gil --i 0"
