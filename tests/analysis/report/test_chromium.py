"""``report.html`` in a real browser: headless Chromium (the Debian package ``chromium``) opens
a report built from fake sections with real PNGs; every section and every figure must be
there and every image must decode.  Chromium is driven over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: JSON messages, NUL-separated, on its fds 3 and 4), as the
gateway's dashboard test does (``tests/chromium_driver.py``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from chromium_driver import Browser, chromium_or_skip

from servelab.analysis.report.build import build_sections
from servelab.analysis.report.render import ReportInfo, render

from .report_fakes import MACHINE, fake_spec, make_ctx

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
    binary = chromium_or_skip("the report's browser test")
    out = tmp_path / "r"
    specs = [fake_spec("gil", 1, figures=2), fake_spec("ctxsw", 2, figures=1),
             fake_spec("bad", 3, fail=True), fake_spec("sched", 4, figures=3)]
    outcomes = build_sections(specs, make_ctx(out))
    render(out, outcomes, ReportInfo(command="servelab report --quick", machine=MACHINE,
                                     profile="p.json", quick=True, variant="full"))
    (tmp_path / "chromium-profile").mkdir()
    browser = Browser(binary, str(tmp_path / "chromium-profile"))
    try:
        browser.page("Page.navigate", {"url": (out / "report.html").resolve().as_uri()})
        state: dict[str, Any] = {}
        end = time.monotonic() + 20
        while time.monotonic() < end:
            state = json.loads(browser.eval(PAGE_STATE) or "{}")
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
