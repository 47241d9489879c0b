"""``servelab crosscheck``'s table: its points hold seconds, the printed table shows ms."""

from __future__ import annotations

import pytest

from servelab.analysis.crosscheck import CrosscheckPoint, format_points


def test_points_hold_seconds_and_the_table_prints_ms() -> None:
    p = CrosscheckPoint(concurrency="threads", load=0.5, rate=40.0, capacity=80.0,
                        live_p50_s=0.0125, sim_p50_s=0.0100, live_throughput=40.0,
                        sim_throughput=38.0, live_p99_s=0.040, sim_p99_s=0.030,
                        capacity_note="ladder")
    row = p.row()
    assert row["live_p50_s"] == 0.0125 and row["p50_error"] == pytest.approx(-0.2)
    line = format_points([p]).splitlines()[-1]
    assert "12.50m" in line and "10.00m" in line and "-20%" in line
