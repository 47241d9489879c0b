from __future__ import annotations

import pytest

from servelab.workloads import list_workloads, load_workload


def test_the_named_workloads_ship():
    assert {"fast-only", "slow-only", "mixed", "bursty", "shifting"} <= set(list_workloads())


@pytest.mark.parametrize("name", list_workloads())
def test_each_shipped_workload_loads_and_generates(name):
    spec = load_workload(name)
    arr = spec.generate()
    assert len(arr) > 0
    assert set(arr.model_names()) <= set(spec.models)
    assert arr.times.max() < spec.total_duration


def test_overrides_and_files(tmp_path):
    spec = load_workload("fast-only", seed=9, duration=2)
    assert spec.seed == 9 and spec.duration == 2
    (tmp_path / "times.txt").write_text("0.1\n0.2\n0.7\n")
    f = tmp_path / "w.yaml"
    f.write_text("duration: 1\narrival: {kind: trace, times_file: times.txt}\nmix: [a]\n")
    assert load_workload(f).generate().times.tolist() == [0.1, 0.2, 0.7]
    with pytest.raises(ValueError, match="shipped"):
        load_workload("nope")
    with pytest.raises(FileNotFoundError):
        load_workload(tmp_path / "missing.yaml")
