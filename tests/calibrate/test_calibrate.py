"""A quick calibration over a tiny model, end to end, inside the test suite."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from servelab.calibrate.calibration import calibrate, compare, show
from servelab.core.profile import Profile

BENCHES = ["ipc", "ctxswitch", "eventloop", "service", "interference", "memory", "speed"]


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    out = tmp_path_factory.mktemp("cal") / "profile.json"
    profile, summary = calibrate(
        out, quick=True, models=["lstm_forecaster"], variant="tiny", only=BENCHES,
        progress=False, plots=True, kernels=("python",),
    )
    return out, profile, summary


def test_profile_written_and_reloads(calibrated):
    out, profile, _ = calibrated
    again = Profile.load(out)
    assert again == profile
    m = profile.model("lstm_forecaster")
    assert [p[0] for p in m.forward.points] == [96, 192, 336, 720]
    assert all(v > 0 for _, v in m.forward.points)
    assert m.stages >= 2 and 0 <= m.gil_share <= 1 and m.cv >= 0
    assert len(m.intra_op_speedup) == 2  # 1 and 2 intra-op threads
    assert m.input_bytes_per_unit == pytest.approx(7 * 4, rel=0.01)  # 7 float32 channels
    assert profile.machine.cores >= 1 and profile.machine.source.startswith("servelab calibrate")
    assert profile.ipc.fixed_s > 0
    assert set(profile.machine.extra["ipc_methods"]) == {"pipe", "queue", "shm"}
    assert profile.event_loop.thread_handoff_s > 0
    assert profile.memory.process_base_mb > 0
    assert "HTTP overhead" not in profile.notes  # not planned here, so not claimed missing
    # The speed reference: a probe at the start and one at the end, and their median.
    speed = profile.machine.extra["speed"]
    assert [p["stage"] for p in speed["probes"]] == ["start", "end"]
    assert set(speed["ref"]["seconds"]) == {"lstm_forecaster", "python"}
    assert all(v > 0 for v in speed["ref"]["seconds"].values())
    assert speed["drift"] >= 0 and speed["variant"] == "tiny"
    # The LSTM on the NumPy kernel: its own service curve, the torch model's cold/memory.
    k = profile.model("lstm_forecaster+python")
    assert [p[0] for p in k.forward.points] == [96, 192, 336, 720]
    assert all(v > 0 for _, v in k.forward.points) and k.forward.points != m.forward.points
    assert k.memory_mb == m.memory_mb and k.cold == m.cold


def test_raw_samples_plots_and_summary(calibrated):
    out, _, summary = calibrated
    samples = pd.read_parquet(out.with_suffix(".samples.parquet"))
    assert set(samples["bench"]) == set(BENCHES)
    assert (samples["value"] >= 0).all()
    assert {p.name for p in out.with_suffix(".plots").iterdir()} >= {"service.png", "ipc.png"}
    on_disk = json.loads(out.with_suffix(".summary.json").read_text())
    assert "lstm_forecaster" in on_disk["service"] and "machine_key" in on_disk
    assert summary["service"]["lstm_forecaster"]["96"]["n"] >= 5  # more when it is fast


def test_resume_measures_only_missing_points(calibrated):
    out, profile, _ = calibrated
    points = sorted(out.with_suffix(".d").joinpath("points").glob("*.json"))
    victim = next(p for p in points if p.name.startswith("ipc-"))
    kept = {p.name: p.stat().st_mtime_ns for p in points if p != victim}
    victim.unlink()
    calibrate(out, quick=True, models=["lstm_forecaster"], variant="tiny", only=BENCHES,
              progress=False, plots=False, kernels=("python",))
    after = {p.name: p.stat().st_mtime_ns for p in out.with_suffix(".d").joinpath("points").glob("*.json")}
    assert victim.name in after
    assert all(after[n] == t for n, t in kept.items())  # nothing else re-measured


def test_show_and_compare(calibrated):
    _, profile, _ = calibrated
    text = show(profile)
    assert "lstm_forecaster" in text and "IPC (pipe)" in text and "event loop" in text
    worst, rows = compare(profile, profile)
    assert worst == 0.0 and len(rows) == 8  # 4 sizes, on torch and on the NumPy kernel
    assert all(0 < a == b < 10 for _, a, b, _ in rows)  # seconds


def test_unknown_bench_selection_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="selects no point"):
        calibrate(tmp_path / "p.json", quick=True, models=["lstm_forecaster"], variant="tiny",
                  only=["nope"], progress=False)


def test_interference_prefers_the_points_own_interleaved_baseline():
    from servelab.calibrate.build import _interference

    def res(k, t, **kw):
        return {"params": {"model": "m", "mode": "processes", "k": k}, "samples": [t] * 5, **kw}

    # the machine slowed between the k=1 and k=2 points: 1.5x across points, 1.1x within one
    drifted = [res(1, 0.010), res(2, 0.015)]
    assert _interference(drifted, {}, cores=2).processes == pytest.approx((1.0, 1.5))
    own = [res(1, 0.010), res(2, 0.015, ratio=1.1)]
    assert _interference(own, {}, cores=2).processes == pytest.approx((1.0, 1.1))


def test_the_k2_interference_point_measures_its_own_baseline(calibrated):
    import json

    out, _, _ = calibrated
    pts = [json.loads(p.read_text()) for p in out.with_suffix(".d").rglob("interference-k2-*.json")]
    assert pts and all(len(p["ratios"]) == 3 and p["ratio"] > 0 for p in pts)


def test_only_remeasures_its_benches_and_keeps_the_rest_of_the_profile(calibrated):
    out, profile, _ = calibrated
    pts = out.with_suffix(".d").joinpath("points")
    before = {p.name: p.stat().st_mtime_ns for p in pts.glob("*.json")}
    again, _ = calibrate(out, quick=True, models=["lstm_forecaster"], variant="tiny",
                         only=["ipc"], fresh=True, progress=False, plots=False,
                         kernels=("python",))
    after = {p.name: p.stat().st_mtime_ns for p in pts.glob("*.json")}
    redone = {n for n in before if after[n] != before[n]}
    assert redone and all(n.startswith("ipc-") for n in redone)
    assert redone == {n for n in before if n.startswith("ipc-")}
    # the profile still has everything measured before, not the ipc selection alone
    assert again.models.keys() == profile.models.keys()
    assert again.model("lstm_forecaster") == profile.model("lstm_forecaster")
    assert "speed" in again.machine.extra and again.ipc.fixed_s > 0
    assert Profile.load(out) == again


def test_corun_pairs_a_kernel_kind_with_the_others_only():
    from servelab.calibrate.benches import corun

    res = corun.measure({"kinds": ["lstm_forecaster+python", "lstm_forecaster", "frontend"],
                         "only_with": ["lstm_forecaster+python"], "variant": "tiny",
                         "seconds": 0.15}, 1, 1)
    got = {(p["a"], p["b"]) for p in res["pairs"]}
    assert got == {("lstm_forecaster+python", "lstm_forecaster+python"),
                   ("lstm_forecaster+python", "lstm_forecaster"),
                   ("lstm_forecaster+python", "frontend")}
    assert all(p["rate_a"] > 0 and p["rate_b"] > 0 for p in res["pairs"])


def test_the_plan_measures_kernels_only_where_asked():
    from servelab.calibrate.plan import KERNELS, plan

    def kernel_points(**kw):
        return [p for p in plan(**kw) if "kernel" in p.params or "only_with" in p.params]

    assert kernel_points(quick=True) == []
    full = kernel_points(quick=False)
    assert {p.params.get("kernel") for p in full if p.bench == "service"} == set(KERNELS)
    assert sum(p.bench == "corun" for p in full) == len(KERNELS)
    one = kernel_points(quick=True, kernels=("c-hold",), models=("distilbert", "mobilenet_v2"))
    assert [(p.bench, p.params.get("model")) for p in one] == [("service", "mobilenet_v2"),
                                                                ("corun", None)]
    assert one[1].params["only_with"] == ["mobilenet_v2+c-hold"]
