"""The renderer with fake sections: a self-contained HTML page, Markdown with relative images,
the data as Parquet, and the summary."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from servelab.analysis.report.build import build_sections
from servelab.analysis.report.render import ReportInfo, machine_line, render

from .report_fakes import MACHINE, fake_spec, make_ctx


def built_report(tmp_path: Path) -> tuple[Path, dict]:  # type: ignore[type-arg]
    out = tmp_path / "r"
    outcomes = build_sections([fake_spec("gil", 1, figures=2), fake_spec("bad", 2, fail=True),
                               fake_spec("sched", 4, figures=1)], make_ctx(out))
    info = ReportInfo(command="servelab report --quick", machine=MACHINE, profile="p.json",
                      quick=True, variant="full", started_at="2026-12-01T17:00:00+00:00",
                      wall_s=75.0, loadavg_end=[1.5, 1.0, 0.5],
                      notes=["section module sec_os is not there yet: skipped"])
    return out, render(out, outcomes, info)


def test_html_is_self_contained_with_toc_answers_and_figure_lines(tmp_path: Path) -> None:
    out, _ = built_report(tmp_path)
    page = (out / "report.html").read_text()
    assert "<script" not in page and "<link" not in page
    assert not re.search(r"(src|href)=['\"](https?:|//|figures/)", page)
    assert page.count("src='data:image/png;base64,") == 3
    assert "Fake CPU @ 1 GHz, 2 usable cores" in page and "0.50/0.40/0.30 at the start" in page
    assert "1.50/1.00/0.50 at the end" in page and "wall time 1 min 15 s" in page
    for sid in ("sec-gil", "sec-bad", "sec-sched"):
        assert f"href='#{sid}'" in page and f"id='{sid}'" in page
    # The answer comes first in its section, escaped.
    gil = page[page.index("id='sec-gil'"):page.index("id='sec-bad'")]
    assert gil.index("class='answer'") < gil.index("<figure")
    assert "gil: the answer is 42 &lt;&amp;&gt;." in gil
    assert "<code>servelab gil --i 1</code>" in gil and "median |error| 12%" in gil
    assert "min-max over 3 repeats" in gil and "a single run: no repeats" in gil
    assert "FAILED." in page and "bad broke on purpose" in page and "--sections bad" in page
    assert "sec_os is not there yet" in page


def test_markdown_data_and_summary(tmp_path: Path) -> None:
    out, summary = built_report(tmp_path)
    md = (out / "report.md").read_text()
    assert "![gil-fig0](figures/gil-fig0.png)" in md and "## 4. Question sched?" in md
    assert "| config | value | mixed |" in md and "**FAILED.**" in md
    for name in ("gil-fig0", "gil-fig1", "sched-fig0"):
        assert (out / "figures" / f"{name}.png").read_bytes().startswith(b"\x89PNG")
        assert list(pd.read_parquet(out / "figures" / f"{name}.parquet").columns) == \
            ["x", "y", "label"]
    assert (out / "tables" / "gil-table.parquet").is_file()
    disk = json.loads((out / "summary.json").read_text())
    assert disk["answers"] == summary["answers"] == {
        "gil": "gil: the answer is 42 <&>.", "bad": None, "sched": "sched: the answer is 42 <&>."}
    assert disk["failed"] == ["bad"] and disk["machine"]["cores"] == 2
    assert "servelab gil --i 0" in disk["commands"] and disk["commands"][0] == \
        "servelab report --quick"
    assert disk["timing"]["wall_s"] == 75.0 and set(disk["timing"]["sections_s"]) == \
        {"gil", "bad", "sched"}
    assert disk["sections"][0]["figures"][1]["fidelity"].startswith("sim vs live")


def test_machine_line_without_load() -> None:
    line = machine_line({"cpu_model": "X", "cores": 2, "logical_cpus": 4})
    assert line.startswith("X, 2 usable cores of 4 logical")


def test_a_resumed_report_says_what_its_sections_took(tmp_path: Path) -> None:
    out = tmp_path / "r"
    build_sections([fake_spec("a", 1)], make_ctx(out))
    outcomes = build_sections([fake_spec("a", 1), fake_spec("b", 2)], make_ctx(out), resume=True)
    s = render(out, outcomes, ReportInfo(command="c", machine=MACHINE, profile="p", quick=True,
                                         variant="full", wall_s=3.0))
    assert s["timing"]["reused"] == ["a"] and "sections' own build times add up" in \
        (out / "report.html").read_text()
    assert "**Build time:**" in (out / "report.md").read_text()
