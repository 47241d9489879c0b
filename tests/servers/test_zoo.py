"""Contract tests for the model zoo, parametrized over every model (tiny variants), plus one
full-size check per model."""

from __future__ import annotations

import argparse
import json
import pickle

import numpy as np
import pytest
import torch

from servelab.servers.zoo import MODELS, ZooModel, cmd_models, get_model
from servelab.servers.zoo.base import StageTimes, stack_requests
from servelab.servers.zoo.describe import describe

NAMES = sorted(MODELS)
# Small request sizes per model (in its size_unit) that still exercise the interesting paths:
# LSTM lookbacks spanning several 96-step chunks, texts of different lengths (padding).
SIZES = {"mobilenet_v2": [32, 32, 32], "distilbert": [5, 23, 60], "lstm_forecaster": [96, 200, 150]}


@pytest.fixture(scope="module", params=NAMES)
def tiny(request: pytest.FixtureRequest) -> ZooModel:
    model = get_model(request.param, variant="tiny")
    model.load()
    return model


def requests_for(model: ZooModel, n: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [model.make_input(SIZES[model.name][i % 3], rng) for i in range(n)]


def outputs_array(result: list[dict[str, np.ndarray]]) -> np.ndarray:
    return np.concatenate([np.concatenate([r[k].ravel() for k in sorted(r)]) for r in result])


# -- registry ----------------------------------------------------------------------------------


def test_registry_names() -> None:
    assert set(MODELS) == {"mobilenet_v2", "distilbert", "lstm_forecaster"}
    for name, cls in MODELS.items():
        assert cls.name == name
        assert cls.size_unit and cls.default_size > 0 and cls.inputs and cls.outputs


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(ValueError) as err:
        get_model("resnet9000")
    for name in NAMES:
        assert name in str(err.value)


def test_unknown_variant() -> None:
    with pytest.raises(ValueError, match="tiny"):
        get_model("lstm_forecaster", variant="huge")


# -- the request path --------------------------------------------------------------------------


def test_make_input_matches_schema(tiny: ZooModel) -> None:
    rng = np.random.default_rng(0)
    for size in SIZES[tiny.name]:
        req = tiny.make_input(size, rng)
        assert set(req) == {spec.name for spec in tiny.inputs}
        for spec in tiny.inputs:
            spec.check(req[spec.name])
            assert req[spec.name].shape[0] == 1
        assert tiny.input_size(req) == size
    assert tiny.input_size(tiny.make_input(None, rng)) == tiny.default_size


@pytest.mark.parametrize("n", [1, 3])
def test_infer_outputs_match_schema(tiny: ZooModel, n: int) -> None:
    times = StageTimes()
    result = tiny.infer(requests_for(tiny, n), times)
    assert len(result) == n
    for out in result:
        assert set(out) == {spec.name for spec in tiny.outputs}
        for spec in tiny.outputs:
            spec.check(out[spec.name])
            assert out[spec.name].shape[0] == 1
            assert np.all(np.isfinite(out[spec.name]))
    assert times.forward > 0 and times.total >= times.forward
    if "probabilities" in result[0]:
        for out in result:
            np.testing.assert_allclose(out["probabilities"].sum(), 1.0, rtol=1e-5)
            assert out["label"][0] == out["probabilities"][0].argmax()


def test_batched_equals_single(tiny: ZooModel) -> None:
    """A request's output does not depend on its batch-mates (padding is masked/negligible)."""
    reqs = requests_for(tiny, 3)
    batched = tiny.infer(reqs)
    for req, out in zip(reqs, batched, strict=True):
        alone = tiny.infer([req])[0]
        for key in out:
            np.testing.assert_allclose(out[key], alone[key], rtol=1e-4, atol=1e-4)


def test_staged_forward_equals_module_forward(tiny: ZooModel) -> None:
    batch = tiny.preprocess(requests_for(tiny, 3))
    stages = tiny.stages(batch)
    assert len(stages) >= 3
    yielded = list(tiny.run_stages(batch))
    assert len(yielded) == len(stages)
    staged, plain = tiny.forward(batch), tiny.forward_unstaged(batch)
    if tiny.name == "lstm_forecaster":
        staged, plain = staged.normalized, plain.normalized
    torch.testing.assert_close(staged, plain, rtol=0, atol=1e-5)


def test_interleaved_stage_runs_restore_grad_mode(tiny: ZooModel) -> None:
    """Two suspended forward passes interleaved on one thread (MLFQ) leave grad mode alone."""
    batch = tiny.preprocess(requests_for(tiny, 1))
    a, b = tiny.run_stages(batch), tiny.run_stages(batch)
    out_a = out_b = None
    for x, y in zip(a, b, strict=True):
        out_a, out_b = x, y
        assert not torch.is_inference_mode_enabled()
    assert out_a is not None and out_b is not None
    assert not torch.is_inference_mode_enabled()


def test_bad_requests_raise(tiny: ZooModel) -> None:
    with pytest.raises(ValueError):
        tiny.preprocess([])
    with pytest.raises(ValueError):
        tiny.preprocess([{"nope": np.zeros(1)}])
    req = requests_for(tiny, 1)[0]
    two = {k: np.concatenate([v, v]) for k, v in req.items()}
    with pytest.raises(ValueError, match="batch dimension 1|lookback"):
        tiny.preprocess([two])


# -- seeds and weights -------------------------------------------------------------------------


def test_same_seed_same_outputs_different_seed_differs(tiny: ZooModel) -> None:
    reqs = requests_for(tiny, 2)
    again = get_model(tiny.name, variant="tiny", seed=0)
    other = get_model(tiny.name, variant="tiny", seed=1)
    base = outputs_array(tiny.infer(reqs))
    np.testing.assert_array_equal(base, outputs_array(again.infer(reqs)))
    assert not np.allclose(base, outputs_array(other.infer(reqs)))
    # Inputs are seeded too.
    np.testing.assert_array_equal(
        outputs_array(requests_for(tiny, 2, seed=5)), outputs_array(requests_for(tiny, 2, seed=5))
    )


def test_building_does_not_touch_global_rng(tiny: ZooModel) -> None:
    torch.manual_seed(42)
    expected = torch.rand(3)
    torch.manual_seed(42)
    get_model(tiny.name, variant="tiny", seed=3).load()
    torch.testing.assert_close(torch.rand(3), expected)


def test_weights_round_trip(tiny: ZooModel, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "weights.pt"
    torch.save(tiny.load().state_dict(), path)
    loaded = get_model(tiny.name, variant="tiny", weights=str(path), seed=7)
    reqs = requests_for(tiny, 2)
    expected = outputs_array(tiny.infer(reqs))
    np.testing.assert_array_equal(expected, outputs_array(loaded.infer(reqs)))
    with pytest.raises(FileNotFoundError):
        get_model(tiny.name, variant="tiny", weights=tmp_path / "missing.pt").load()


def test_pickle_round_trip(tiny: ZooModel) -> None:
    clone = pickle.loads(pickle.dumps(tiny))
    reqs = requests_for(tiny, 1)
    np.testing.assert_array_equal(outputs_array(tiny.infer(reqs)), outputs_array(clone.infer(reqs)))
    fresh = pickle.loads(pickle.dumps(get_model(tiny.name, variant="tiny")))
    assert fresh._module is None


def test_parameter_counts(tiny: ZooModel) -> None:
    assert tiny.num_parameters() > 0
    assert tiny.param_bytes() >= 4 * tiny.num_parameters()


def test_describe(tiny: ZooModel) -> None:
    before = torch.get_num_threads()
    info = describe(tiny, threads=1, repeats=3, warmups=1)
    assert torch.get_num_threads() == before
    assert info["name"] == tiny.name and info["variant"] == "tiny"
    assert info["parameters"] == tiny.num_parameters()
    assert info["inputs"] == [s.to_oip() for s in tiny.inputs]
    assert info["outputs"] == [s.to_oip() for s in tiny.outputs]
    lat = info["latency"]
    assert lat["threads"] == 1 and lat["input_size"] == tiny.default_size
    assert 0 < lat["min_s"] <= lat["median_s"] < 10  # seconds


def test_models_command(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    cmd_models.add_arguments(parser)
    args = parser.parse_args(["lstm_forecaster", "--variant", "tiny", "--repeats", "2", "--json"])
    assert cmd_models.run(args) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "lstm_forecaster" and info["latency"]["repeats"] == 2
    assert cmd_models.run(parser.parse_args(["--variant", "tiny", "--no-measure"])) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in NAMES)
    with pytest.raises(ValueError):
        cmd_models.run(parser.parse_args(["--weights", "w.pt"]))


def test_stack_requests() -> None:
    reqs = [{"x": np.ones((1, 2))}, {"x": np.zeros((1, 2))}]
    assert stack_requests(reqs, "x").shape == (2, 2)
    with pytest.raises(ValueError, match="batch dimension 1"):
        stack_requests([{"x": np.ones((2, 2))}], "x")


# -- model specifics ---------------------------------------------------------------------------


def test_mobilenet_rejects_other_sizes() -> None:
    model = get_model("mobilenet_v2", variant="tiny")
    with pytest.raises(ValueError):
        model.make_input(64, np.random.default_rng(0))
    with pytest.raises(ValueError):
        model.preprocess([{"image": np.zeros((1, 64, 64, 3), np.uint8)}])


def test_mobilenet_stage_groups_cover_features() -> None:
    for variant in ("tiny", "full"):
        model = get_model("mobilenet_v2", variant=variant)
        flat = [i for group in model.stage_groups() for i in group]
        assert flat == list(range(len(model.load().features)))


@pytest.mark.parametrize("variant", ["tiny", "full"])
def test_mobilenet_architecture_is_torchvisions(variant: str) -> None:
    """The zoo builds MobileNetV2 without importing torchvision: the same modules, state dict
    and seeded values as ``torchvision.models.mobilenet_v2``, so the same outputs."""
    torchvision_models = pytest.importorskip("torchvision.models")
    from servelab.servers.zoo import mobilenet

    model = get_model("mobilenet_v2", variant=variant)
    kwargs = {"num_classes": mobilenet.NUM_CLASSES,
              "width_mult": 1.0 if variant == "full" else mobilenet.TINY_WIDTH,
              "inverted_residual_setting": [list(row) for row in model.setting]}
    torch.manual_seed(7)
    theirs = torchvision_models.mobilenet_v2(weights=None, **kwargs)
    torch.manual_seed(7)
    ours = model.architecture()
    assert str(ours) == str(theirs).replace("Conv2dNormActivation", "Sequential")
    a, b = theirs.state_dict(), ours.state_dict()
    assert list(a) == list(b)
    for name in a:
        assert torch.equal(a[name], b[name]), name
    for module in (theirs, ours):  # BatchNorm statistics from the same random batches
        torch.manual_seed(8)
        mobilenet.calibrate_batchnorm(module)
    x = torch.randn(3, 3, mobilenet.IMAGE_SIDE, mobilenet.IMAGE_SIDE)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))
        assert torch.equal(pickle.loads(pickle.dumps(ours))(x), ours(x))


def test_distilbert_accepts_str_and_bytes() -> None:
    model = get_model("distilbert", variant="tiny")
    text = "The plot was gripping and the cast was superb."
    as_bytes = model.infer([{"text": np.array([text.encode()], dtype=object)}])
    as_str = model.infer([{"text": np.array([text], dtype=object)}])
    np.testing.assert_array_equal(as_bytes[0]["probabilities"], as_str[0]["probabilities"])
    assert model.input_size({"text": np.array([text], dtype=object)}) == 9


def test_lstm_mixed_lookbacks_and_limits() -> None:
    model = get_model("lstm_forecaster", variant="tiny")
    rng = np.random.default_rng(0)
    batch = model.preprocess([model.make_input(50, rng), model.make_input(130, rng)])
    assert tuple(batch.x.shape) == (2, 130, 7) and batch.lookbacks == [50, 130]
    assert len(model.stages(batch)) == 2 + 1  # two 96-step chunks, then the head
    # Windows are standardized per channel; the statistics undo it.
    torch.testing.assert_close(batch.x[1].mean(0), torch.zeros(7), atol=1e-5, rtol=0)
    with pytest.raises(ValueError):
        model.make_input(721, rng)
    with pytest.raises(ValueError):
        model.preprocess([{"window": np.zeros((1, 96, 5), np.float32)}])


def test_lstm_forecast_is_denormalized() -> None:
    """Outputs come back in the input's units: shifting a window shifts its forecast."""
    model = get_model("lstm_forecaster", variant="tiny")
    window = model.make_input(96, np.random.default_rng(0))["window"]
    base = model.infer([{"window": window}])[0]["forecast"]
    shifted = model.infer([{"window": window + 100.0}])[0]["forecast"]
    np.testing.assert_allclose(shifted - base, 100.0, atol=1e-2)


# -- full-size models --------------------------------------------------------------------------


def test_full_mobilenet() -> None:
    model = get_model("mobilenet_v2")
    assert 2_200_000 < model.num_parameters() < 2_300_000
    out = model.infer([model.make_input(32, np.random.default_rng(0))])
    MODELS["mobilenet_v2"].outputs[0].check(out[0]["probabilities"])
    assert len(model.stages(model.preprocess([model.make_input(32, np.random.default_rng(0))])))


def test_full_lstm() -> None:
    model = get_model("lstm_forecaster")
    assert model.num_parameters() == 223_912  # 2-layer LSTM(7 -> 128) + Linear(128 -> 168)
    rng = np.random.default_rng(0)
    batch = model.preprocess([model.make_input(720, rng)])
    assert len(model.stages(batch)) == 8 + 1
    torch.testing.assert_close(
        model.forward(batch).normalized,
        model.forward_unstaged(batch).normalized,
        rtol=0,
        atol=1e-5,
    )
    assert model.infer([model.make_input(720, rng)])[0]["forecast"].shape == (1, 24, 7)


@pytest.mark.slow
def test_full_distilbert() -> None:
    model = get_model("distilbert")
    assert abs(model.num_parameters() - 66_000_000) <= 1_000_000
    assert model.load().config.vocab_size == 30522
    request = model.make_input(16, np.random.default_rng(0))
    assert len(model.stages(model.preprocess([request]))) == 1 + 6 + 1
    out = model.infer([request])
    assert out[0]["probabilities"].shape == (1, 2)
