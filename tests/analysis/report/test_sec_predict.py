"""Report section 3 (``sec_predict``) end to end on the tests' cut: a tiny simulated training
set through ``ctx.cached``, a synthetic stored validate run as the held-out live check, the
three figures and their claims; later reports reuse the cached training set, and one without
any validate run says so."""

from __future__ import annotations

import pandas as pd

from servelab.analysis.best_config import study as S
from servelab.analysis.report import sec_predict
from servelab.analysis.report.section import Context
from servelab.core.profile import default_profile


def _validate_run(root):
    """A stored validate run: fast-only at two loads, the three tiny-cut configurations; live,
    processes wins at 0.8 and threads at 0.5."""
    rows = []
    for load, rate in ((0.5, 40.0), (0.8, 64.0)):
        for cell, rew in (("threads-w2-fifo", 38.0 if load == 0.5 else 50.0),
                          ("processes-w2-fifo", 37.0 if load == 0.5 else 60.0),
                          ("async-inline-w2-fifo", 36.0 if load == 0.5 else 40.0)):
            rows.append({"workload": "fast-only", "load": load, "cell": cell, "repeat": 0,
                         "key": f"fast-only|{cell}|{load}|r0", "finished_at": f"{cell}{load}",
                         "live_reward": rew, "sim_reward": rew * 1.05, "rate": rate,
                         "duration": 3.0, "warmup": 1.0, "seed": 11})
    run = root / "validate-test"
    run.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(run / "points.parquet")


def test_section_builds_checks_live_and_reuses_its_cache(tmp_path, monkeypatch):
    prof = tmp_path / "p.json"
    default_profile().save(prof)
    _validate_run(tmp_path / "results")
    monkeypatch.setattr(sec_predict, "LIVE_ROOT", tmp_path / "results")
    ctx = Context(out=tmp_path / "report", quick=True, profile=prof, machine={},
                  cache=tmp_path / "cache", variant="tiny", log=lambda s: None)
    ctx.out.mkdir()
    sec = sec_predict.build(ctx)
    assert (sec.key, sec_predict.ORDER) == ("predict", 3) and sec.title == sec_predict.TITLE
    assert "%" in sec.answer and "2 held-out live decisions" in sec.answer
    assert [f.name for f in sec.figures] == ["predict-shares", "predict-confusion",
                                             "predict-importance"]
    for f in sec.figures:
        assert f.png.is_file() and f.png.parent == ctx.out and not f.data.empty
        assert f.command.startswith("servelab best-config --quick --profile")
    assert "live held-out (2 decisions)" in (sec.figures[0].fidelity or "")
    shares = sec.figures[0].data
    assert set(shares["where"]) == {"sim CV", "live held-out"}
    assert shares["share"].between(0, 1).all()
    assert {t.name for t in sec.tables} == {"predict-rules", "predict-cv"}
    assert (ctx.cache / "predict-samples-quick-tiny.parquet").is_file()

    def no_simulation(*a, **k):
        raise AssertionError("the cached training set was not reused")

    # the next report: the training set from the cache; no stored validate run this time, so
    # the section still builds and says how to get the live check
    monkeypatch.setattr(S, "simulate_samples", no_simulation)
    monkeypatch.setattr(sec_predict, "LIVE_ROOT", tmp_path / "nothing")
    bare = sec_predict.build(ctx)
    assert any("No live validate run" in n for n in bare.notes)
    assert bare.figures[0].fidelity is None and "live" not in bare.answer
    assert bare.figures[1].claim == sec.figures[1].claim  # same training set, same CV
