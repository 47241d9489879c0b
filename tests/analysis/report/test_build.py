"""The report builder with fake sections: order, progress, storage, resume, a failing section,
and the command's exit code."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import pytest

from servelab.analysis.report import store
from servelab.analysis.report.build import build_sections
from servelab.analysis.report.report import ReportOptions, make_report, newest_profile
from servelab.analysis.report.sections import discover, from_module, select

from .report_fakes import MACHINE, fake_spec, make_ctx


def test_sections_run_in_order_with_progress_and_are_stored(tmp_path: Path) -> None:
    lines: list[str] = []
    calls: list[str] = []
    ctx = make_ctx(tmp_path / "r", lines)
    specs = [fake_spec("a", 1, calls=calls), fake_spec("b", 2, calls=calls)]
    out = build_sections(specs, ctx)
    assert [o.status for o in out] == ["built", "built"] and calls == ["a", "b"]
    assert any(line.startswith("[1/2] 1. a: Question a?") for line in lines)
    assert any("report elapsed" in line for line in lines)
    assert any("a: built in" in line for line in lines)
    assert "  b: working" in lines  # the section's own log goes through the builder's
    assert "b: built in" in (tmp_path / "r" / "build.log").read_text()
    again, meta = store.load(tmp_path / "r" / "sections" / "a")
    assert meta["order"] == 1 and again.answer == out[0].section.answer  # type: ignore[union-attr]
    assert [f.name for f in again.figures] == ["a-fig0", "a-fig1"]
    pd.testing.assert_frame_equal(again.figures[1].data, out[0].section.figures[1].data)  # type: ignore[union-attr]
    assert again.tables[0].data["mixed"].tolist() == ["{'k': 1}", "text"]  # stored as text


def test_a_failing_section_is_reported_and_the_others_still_run(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path / "r")
    out = build_sections([fake_spec("a", 1), fake_spec("bad", 2, fail=True),
                          fake_spec("c", 3)], ctx)
    assert [o.status for o in out] == ["built", "failed", "built"]
    assert out[1].error == "RuntimeError: bad broke on purpose"
    log = (tmp_path / "r" / "build.log").read_text()
    assert "Traceback (most recent call last)" in log and "bad broke on purpose" in log
    assert not (tmp_path / "r" / "sections" / "bad").exists()


def test_resume_reuses_built_sections_and_builds_the_rest(tmp_path: Path) -> None:
    calls: list[str] = []
    ctx = make_ctx(tmp_path / "r")
    build_sections([fake_spec("a", 1, calls=calls), fake_spec("b", 2, fail=True, calls=calls)],
                   ctx)
    calls.clear()
    lines: list[str] = []
    out = build_sections([fake_spec("a", 1, calls=calls), fake_spec("b", 2, calls=calls)],
                         make_ctx(tmp_path / "r", lines), resume=True)
    assert calls == ["b"] and [o.status for o in out] == ["reused", "built"]
    assert any("1. a: Question a?: reused from" in line for line in lines)
    assert out[0].section is not None and len(out[0].section.figures) == 2
    # A damaged stored copy is built again, not trusted.
    (tmp_path / "r" / "sections" / "a" / "a-fig0.png").unlink()
    out = build_sections([fake_spec("a", 1, calls=calls)], make_ctx(tmp_path / "r"), resume=True)
    assert out[0].status == "built" and calls[-1] == "a"


def test_discovery_notes_missing_modules_and_select_checks_keys() -> None:
    specs, notes = discover(["sec_not_written_yet"])
    assert specs == [] and notes == ["section module sec_not_written_yet is not there yet: skipped"]
    with pytest.raises(ValueError, match="not a report section: no ORDER, build"):
        from_module(argparse.Namespace(KEY="k", TITLE="t"))
    s = [fake_spec("a", 1), fake_spec("b", 2)]
    assert [x.key for x in select(s, ["b"])] == ["b"] and select(s, None) == s
    with pytest.raises(ValueError, match="unknown section"):
        select(s, ["zzz"])


def test_newest_profile_picks_by_variant(tmp_path: Path) -> None:
    import os

    assert newest_profile(tmp_path / "none") is None
    for i, name in enumerate(["a-quick.json", "b-quick.json", "b-quick.summary.json",
                              "c-quick-tiny.json"]):
        (tmp_path / name).write_text("{}")
        os.utime(tmp_path / name, (1000 + i, 1000 + i))
    assert newest_profile(tmp_path).name == "b-quick.json"  # type: ignore[union-attr]
    assert newest_profile(tmp_path, "tiny").name == "c-quick-tiny.json"  # type: ignore[union-attr]


def test_the_command_exits_non_zero_when_a_section_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from servelab.analysis import cmd_report
    from servelab.analysis.report import report

    specs = [fake_spec("a", 1), fake_spec("bad", 2, fail=True)]
    monkeypatch.setattr(report, "discover", lambda: (specs, ["section module sec_x is not there yet: skipped"]))
    monkeypatch.setattr(report, "machine_metadata", lambda: MACHINE, raising=False)
    monkeypatch.setattr(cmd_report, "RESULTS_ROOT", tmp_path)
    parser = argparse.ArgumentParser()
    cmd_report.add_arguments(parser)
    rc = cmd_report.run(parser.parse_args(["--quick", "--out", str(tmp_path / "r")]))
    text = capsys.readouterr().out
    assert rc == 1 and "1 section(s) failed: bad" in text
    assert "no profile under" in text and "servelab calibrate --quick" in text
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["failed"] == ["bad"] and summary["answers"]["a"].startswith("a: the answer")
    assert summary["notes"] == ["section module sec_x is not there yet: skipped"]
    # Resuming with only the broken section fixed: exit 0, the first one reused.
    monkeypatch.setattr(report, "discover", lambda: ([fake_spec("a", 1), fake_spec("bad", 2)], []))
    rc = cmd_report.run(parser.parse_args(["--quick", "--resume", str(tmp_path / "r")]))
    assert rc == 0 and "Question a?: reused from" in capsys.readouterr().out


def test_make_report_with_explicit_specs(tmp_path: Path) -> None:
    opts = ReportOptions(out=tmp_path / "r", command="servelab report --quick", profile=None,
                         profile_note="none", quick=True, cache=tmp_path / "cache",
                         sections=("b",))
    res = make_report(opts, lambda s: None, specs=[fake_spec("a", 1), fake_spec("b", 2)],
                      machine=MACHINE)
    assert [o.key for o in res.outcomes] == ["b"] and res.failed == []


def test_the_cache_hits_with_tuples_in_its_key(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path / "r")
    calls: list[int] = []

    def compute() -> pd.DataFrame:
        calls.append(1)
        return pd.DataFrame({"x": [1.0]})

    for _ in range(2):
        df = ctx.cached("thing", compute, {"plan": {"loads": (0.5, 0.8)}, "profile": "abc"})
    assert calls == [1] and df.x.tolist() == [1.0]
    ctx.cached("thing", compute, {"plan": {"loads": (0.5, 0.95)}, "profile": "abc"})
    assert calls == [1, 1]  # another key: computed again
