"""The profile schema: JSON round trips, version checks, the cost curves, the default profile."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from servelab.core.profile import (
    SCHEMA_VERSION,
    CostCurve,
    GilCost,
    Interference,
    MachineInfo,
    ModelProfile,
    Profile,
    ProfileError,
    default_profile,
    load_profile,
    queueing_profile,
)


def test_default_profile_round_trips_through_json(tmp_path):
    p = default_profile()
    assert Profile.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    path = tmp_path / "sub" / "profile.json"
    p.save(path)
    assert Profile.load(path) == p
    assert load_profile(path) == p and load_profile(None) == p
    assert p.digest == Profile.load(path).digest


def test_default_profile_is_labelled_and_matches_the_design_figures():
    p = default_profile()
    assert p.machine.source == "design-doc defaults, not calibrated"
    assert p.schema_version == SCHEMA_VERSION and p.machine.cores == 2
    ms = 1e-3
    assert p.model("mobilenet_v2").mean_service(32) == pytest.approx(9 * ms)
    bert = p.model("distilbert")
    for tokens, expected in ((64, 130), (128, 270), (512, 730)):
        assert bert.mean_service(tokens) == pytest.approx(expected * ms, rel=1e-3)
    lstm = p.model("lstm_forecaster")
    assert lstm.mean_service(96) == pytest.approx(2.4 * ms, rel=1e-3)
    assert lstm.mean_service(720) == pytest.approx(10 * ms, rel=1e-3)
    # GIL-bound MobileNetV2, GEMM-bound DistilBERT.
    assert p.model("mobilenet_v2").gil_share > 5 * bert.gil_share
    assert set(p.http) == {"threads", "processes", "async"}


def test_schema_version_is_checked():
    d = default_profile().to_dict()
    d["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(ProfileError, match="re-run the calibration"):
        Profile.from_dict(d)
    del d["schema_version"]
    with pytest.raises(ProfileError, match="no schema_version"):
        Profile.from_dict(d)
    with pytest.raises(ProfileError, match="expected a JSON object"):
        Profile.from_dict([1, 2])  # type: ignore[arg-type]


def test_unknown_fields_and_bad_values_are_errors(tmp_path):
    d = default_profile().to_dict()
    d["models"]["mobilenet_v2"]["gil"] = 0.3
    with pytest.raises(ProfileError, match=r"unknown field\(s\) \['gil'\]"):
        Profile.from_dict(d)
    with pytest.raises(ProfileError, match="gil_share"):
        ModelProfile(gil_share=1.5)
    with pytest.raises(ProfileError, match="unknown dist"):
        ModelProfile(dist="weibull")
    with pytest.raises(ProfileError, match="strictly increasing"):
        CostCurve(points=((10, 1.0), (5, 2.0)))
    with pytest.raises(ProfileError, match="unknown stack"):
        Profile(http={"fibers": default_profile().http["async"]})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ProfileError, match="not valid JSON"):
        Profile.load(bad)
    with pytest.raises(FileNotFoundError):
        Profile.load(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="it has: mobilenet_v2"):
        default_profile().model("resnet")


def test_cost_curves():
    lin = CostCurve(fixed_s=1.0, per_unit_s=0.5)
    assert lin(4) == pytest.approx(3.0)
    pts = CostCurve(fixed_s=0.0, points=((10, 1.0), (20, 3.0)))
    np.testing.assert_allclose(pts.evaluate([0, 5, 10, 15, 20, 30]), [0, 0.5, 1, 2, 3, 5])
    assert CostCurve.from_dict(pts.to_dict()) == pts


def test_interference_and_gil_curves():
    i = Interference(threads=(1.0, 1.2, 1.5), processes=(1.0,))
    assert i.slowdown("threads", 1) == 1.0
    assert i.slowdown("threads", 2.5) == pytest.approx(1.35)
    assert i.slowdown("threads", 9) == 1.5
    assert i.slowdown("processes", 4) == 1.0
    with pytest.raises(ValueError, match="valid: threads, processes"):
        i.slowdown("fibers", 2)
    assert GilCost(contention_overhead=0.1).capacity(3) == pytest.approx(1 / 1.2)


def test_machine_metadata_keeps_unknown_keys():
    meta = {"cpu_model": "x", "cores": 16, "memory_bytes": 1 << 30, "logical_cpus": 32,
            "torch_threads_default": 16}
    m = MachineInfo.from_dict(meta)
    assert m.cores == 16 and m.extra == {"logical_cpus": 32, "torch_threads_default": 16}
    assert MachineInfo.from_dict(m.to_dict()) == m


def test_memory_estimate_counts_model_copies_per_process():
    p = default_profile()
    models = ["mobilenet_v2", "distilbert"]
    threads = p.memory_mb("threads", 4, models)
    procs = p.memory_mb("processes", 4, models)
    assert procs > threads
    assert procs - p.memory.server_base_mb == pytest.approx(4 * (p.memory.process_base_mb + 360))


def test_queueing_profile_is_pure():
    p = queueing_profile({"a": 2.0, "b": (1.0, "gamma", 0.5)}, cores=3)
    assert p.machine.cores == 3 and p.model("a").mean_service(1) == 2.0
    assert p.model("b").dist == "gamma" and p.model("b").cv == 0.5
    assert not p.http and p.model("a").gil_share == 0


def test_core_profile_does_not_import_torch():
    code = "import sys, servelab.core.profile; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_kernel_configuration_runs_on_its_calibrated_kernel_costs():
    import dataclasses

    from servelab.core.profile import CostCurve, GilCost

    p = default_profile()
    mob = p.model("mobilenet_v2")
    held = dataclasses.replace(mob, forward=CostCurve(fixed_s=0.02), gil_share=1.0)
    pairs = {"mobilenet_v2": {"mobilenet_v2": 0.4, "frontend": 0.2},
             "frontend": {"mobilenet_v2": 0.9, "frontend": 0.5,
                          "mobilenet_v2+c-hold": 0.5},
             "mobilenet_v2+c-hold": {"mobilenet_v2+c-hold": 0.5, "frontend": 0.5}}
    p = dataclasses.replace(p, models={**p.models, "mobilenet_v2+c-hold": held},
                            gil=GilCost(pairs=pairs))
    q, used = p.for_kernel("c-hold")
    assert q.model("mobilenet_v2") == held and "+" not in "".join(q.models)
    assert q.model("distilbert") == p.model("distilbert")  # no kernel changes it
    assert q.gil.pairs["mobilenet_v2"] == {"mobilenet_v2": 0.5, "frontend": 0.5}
    assert q.gil.pairs["frontend"]["mobilenet_v2"] == 0.5
    assert "calibrated for mobilenet_v2" in used
    assert "not calibrated for lstm_forecaster" in used and "--kernels c-hold" in used
    assert p.for_kernel("torch") == (p, "torch")
    _, used = p.for_kernel("c-release")  # nothing calibrated on it: torch costs, said so
    assert "not calibrated for lstm_forecaster, mobilenet_v2" in used
