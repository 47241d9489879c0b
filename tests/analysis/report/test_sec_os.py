"""Report sections 2 (sec_ctxsw) and 6 (sec_os): every measurement through the report cache
(measured once, reused by the next report), one PNG per figure named <key>-<what>, a claim
with its numbers and the reproduce command; a measurement that fails becomes a note."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import servelab.analysis.os_study as os_study
import servelab.analysis.os_study.figures as figures
from servelab.analysis.report import sec_ctxsw, sec_os
from servelab.analysis.report.section import Context
from tests.analysis.os_fakes import frames


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    got: list[str] = []
    fakes = frames()

    def run_one(name: str, quick: bool, variant: str, **over: Any) -> pd.DataFrame:
        got.append(name)
        if name == "gil":
            raise RuntimeError("ffi kernels not built")
        return fakes[name]

    def plot(name: str, df: pd.DataFrame, path: Path, title: str = "") -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x89PNG" + name.encode() * 300)  # rendering: test_figures below
        return path

    monkeypatch.setattr(os_study, "run_one", run_one)
    monkeypatch.setattr(figures, "plot", plot)
    return got


def _ctx(tmp_path: Path) -> Context:
    return Context(out=tmp_path / "report", quick=True, profile=None,
                   machine={"cores": 2, "cpu_model": "test"}, cache=tmp_path / "cache",
                   variant="tiny", log=lambda s: None)


def test_sections_figures_claims_commands_and_the_shared_cache(
        tmp_path: Path, calls: list[str]) -> None:
    ctx = _ctx(tmp_path)
    two = sec_ctxsw.build(ctx)
    six = sec_os.build(ctx)
    assert (sec_ctxsw.KEY, sec_ctxsw.ORDER, sec_os.KEY, sec_os.ORDER) == ("ctxsw", 2, "os", 6)
    assert [f.name for f in two.figures] == ["ctxsw-switches", "ctxsw-ipc"]
    assert "os-memory" in [f.name for f in six.figures] and "os-starvation" in \
        [f.name for f in six.figures]
    for f in two.figures + six.figures:
        assert f.png.is_file() and f.png.stat().st_size > 100 and f.png.parent == ctx.out
        assert f.name.startswith(("ctxsw-", "os-"))
        assert f.command.startswith("servelab os-study --quick --variant tiny --only ")
        assert any(ch.isdigit() for ch in f.claim) and f.spread
    assert "threads 10.5 voluntary" in two.answer and "processes" in two.answer
    assert "shared memory beats a pipe from 64 KiB" in two.answer
    # The GIL failed: a note and a table row saying so, never an exception.
    assert any("GIL" in n and "ffi kernels not built" in n for n in six.notes)
    table = six.tables[0].data
    assert len(table) == len(sec_os.CONCEPTS) and table["command"].str.startswith(
        "servelab os-study").all()
    assert "deadlock is answered HTTP 500 by the watchdog in 1.3 s" in six.answer
    assert "shared memory beats a pipe from 64 KiB" in six.answer
    dl = next(f for f in six.figures if f.name == "os-deadlock")
    assert "HTTP 500" in dl.claim and "HTTP 504" in dl.claim
    assert "No hardware counter" in next(f.claim for f in six.figures if f.name == "os-perf")
    assert not any("held cores" in n for n in two.notes)  # the fakes ran on an idle box
    assert calls.count("ipc") == 1  # section 6 reused section 2's measurement
    before = len(calls)
    sec_os.build(ctx)  # a second report: everything from the cache but the failed one
    assert calls[before:] == ["gil"]


def test_every_measurement_has_a_figure_and_a_claim(tmp_path: Path) -> None:
    from servelab.analysis.os_study.claims import claim, numbers

    for name, df in frames().items():
        assert numbers(name, df) and claim(name, df)
        if name in ("ctxsw", "ipc", "deadlock", "perf"):  # rendering costs ~0.5 s a figure
            png = figures.plot(name, df, tmp_path / f"{name}.png", name, dpi=30)
            assert png.read_bytes()[:4] == b"\x89PNG", name
    assert set(frames()) == set(os_study.MEASUREMENTS)


def test_a_frame_cached_in_the_old_ms_format_is_measured_again(
        tmp_path: Path, calls: list[str]) -> None:
    import json

    ctx = _ctx(tmp_path)
    ctx.cache.mkdir(parents=True)
    old = frames()["affinity"].rename(columns={"p50_s": "p50_ms", "p99_s": "p99_ms"})
    old.to_parquet(ctx.cache / "os-study-affinity-quick-tiny.parquet")
    (ctx.cache / "os-study-affinity-quick-tiny.json").write_text(json.dumps(
        {"name": "os-study-affinity", "quick": True, "variant": "tiny"}))  # version 1's key
    df = sec_ctxsw.measured(ctx, "affinity")
    assert calls == ["affinity"] and "p50_s" in df.columns
