"""The report's own sections: registered in order, and the arithmetic their answers rest on
(no runs)."""

from __future__ import annotations

import pandas as pd

from servelab.analysis.report.common import fidelity_line
from servelab.analysis.report.sections import discover


def test_the_registry_finds_sections_1_4_5_in_order() -> None:
    from servelab.analysis.report.sections import MODULES

    assert {"sec_gil", "sec_sched", "sec_meta"} <= set(MODULES)
    specs, notes = discover(["sec_meta", "sec_gil", "sec_sched"])
    assert [(s.key, s.order) for s in specs] == [("gil", 1), ("sched", 4), ("meta", 5)]
    assert notes == []


def test_gil_crossover_and_ratio() -> None:
    from servelab.analysis.report.sec_gil import crossover, medians, ratio

    rows = [{"source": "sim", "model": "m", "mode": mode, "workers": n, "level": "capacity",
             "throughput": t, "p99_s": float("nan"), "repeat": 0}
            for mode, ts in (("threads", (10, 11, 11)), ("processes", (10, 12, 20)))
            for n, t in zip((1, 2, 4), ts, strict=True)]
    med = medians(pd.DataFrame(rows))
    assert crossover(med, "sim", "m") == 2 and ratio(med, "sim", "m", 4) == 20 / 11
    assert crossover(med, "live", "m") is None


def test_sched_cut_against_fifo() -> None:
    from servelab.analysis.report.sec_sched import cut

    cells = pd.DataFrame({"source": "sim", "concurrency": "threads", "load": 0.8,
                          "policy": ["fifo", "sjf-mean"], "wait_mean": [0.2, 0.05]})
    assert abs(cut(cells, "sim", "threads", 0.8, "sjf-mean") - 0.75) < 1e-12
    assert cut(cells, "live", "threads", 0.8, "sjf-mean") != cut(cells, "live", "threads", 0.8,
                                                                 "sjf-mean")  # NaN: no cell


def test_fidelity_line() -> None:
    assert fidelity_line("p99", [1.1, 0.5, float("nan")], [1.0, 1.0, 2.0]) == \
        "sim vs live p99: median |error| 30% (max 50%) over 2 points"
    assert fidelity_line("p99", [], []) is None
