from __future__ import annotations

import json

from servelab.calibrate.runner import Point, run_points


def test_points_run_in_fresh_processes_and_resume(tmp_path):
    pts = [Point("sleep", {"seconds": 0.001}, warmups=1, samples=3),
           Point("sleep", {"seconds": 0.002}, warmups=1, samples=3)]
    first = run_points(pts, tmp_path, progress=False)
    assert [len(r["samples"]) for r in first] == [3, 3]
    assert all(s >= 0.001 for s in first[0]["samples"])
    # A killed run: one point's result is lost; the resumed run measures only that one.
    files = sorted((tmp_path / "points").glob("*.json"))
    assert len(files) == 2
    kept = json.loads(files[0].read_text())
    files[1].unlink()
    again = run_points(pts, tmp_path, progress=False)
    assert len(again) == 2
    assert any(r == kept for r in again)  # the surviving point was reused, not re-measured
    assert len(list((tmp_path / "points").glob("*.json"))) == 2


def test_point_ids_are_stable_and_distinct():
    a = Point("sleep", {"seconds": 0.001})
    assert a.id == Point("sleep", {"seconds": 0.001}).id
    assert a.id != Point("sleep", {"seconds": 0.002}).id
