"""Every kernel computes what the torch models compute (max abs error <= 1e-4)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from servelab.ffi import KERNELS, LstmWeights, get_kernels
from servelab.servers.kernel_models import KernelLstm, KernelMobileNet, apply_kernel
from servelab.servers.zoo import get_model

TOL = 1e-4


@pytest.mark.parametrize("kind", KERNELS)
@pytest.mark.parametrize("variant,seed", [("full", 0), ("full", 7), ("tiny", 1)])
def test_lstm_forward_matches_torch(kind, variant, seed, kernels_for):
    model = get_model("lstm_forecaster", variant=variant, seed=seed)
    net = model.load()
    w = LstmWeights.from_module(net)
    k = kernels_for(kind)
    rng = np.random.default_rng(seed)
    for shape in [(1, 96), (3, 250), (2, 1)]:
        x = rng.standard_normal((*shape, 7)).astype(np.float32)
        with torch.inference_mode():
            want = net(torch.from_numpy(x)).numpy()
        got = k.lstm_forward(w, x)
        assert got.shape == want.shape == (shape[0], 24, 7)
        assert np.abs(got - want).max() <= TOL, (kind, variant, shape)


@pytest.mark.parametrize("kind", KERNELS)
def test_lstm_chunks_carry_state(kind, lstm_full, kernels_for):
    w = LstmWeights.from_module(lstm_full.load())
    k = kernels_for(kind)
    x = np.random.default_rng(5).standard_normal((2, 230, 7)).astype(np.float32)
    state = k.lstm_state(w, 2)
    before = [a.copy() for a in state]
    for i in range(0, 230, 96):
        state = k.lstm_steps(w, x[:, i : i + 96], state)
    assert all(np.array_equal(a, b) for a, b in zip(k.lstm_state(w, 2), before, strict=True))
    assert np.abs(k.lstm_head(w, state) - k.lstm_forward(w, x)).max() <= 1e-5


@pytest.mark.parametrize("kind", KERNELS)
def test_preprocess_matches_mobilenet(kind, kernels_for):
    k = kernels_for(kind)
    mobilenet = get_model("mobilenet_v2", variant="tiny")
    rng = np.random.default_rng(0)
    for n in (1, 5):
        reqs = [mobilenet.make_input(None, rng) for _ in range(n)]
        want = mobilenet.preprocess(reqs).numpy()
        got = k.preprocess_images(np.concatenate([r["image"] for r in reqs]))
        assert got.dtype == np.float32 and got.shape == (n, 3, 32, 32)
        assert got.flags.c_contiguous
        assert np.abs(got - want).max() <= 1e-6


def test_preprocess_other_shapes_and_errors(c_kind):
    k = get_kernels(c_kind)
    x = np.random.default_rng(1).integers(0, 256, (2, 5, 7, 4), dtype=np.uint8)
    mean, std = [0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]
    want = get_kernels("python").preprocess_images(x, mean, std)
    assert np.abs(k.preprocess_images(x, mean, std) - want).max() <= 1e-6
    with pytest.raises(ValueError):
        k.preprocess_images(x.astype(np.float32))
    with pytest.raises(ValueError):
        k.preprocess_images(x, [0.1], [0.2])


def test_lstm_bad_inputs(c_kind, lstm_full):
    k = get_kernels(c_kind)
    w = LstmWeights.from_module(lstm_full.load())
    with pytest.raises(ValueError):
        k.lstm_forward(w, np.zeros((1, 10, 3), np.float32))
    with pytest.raises(ValueError):
        k.lstm_steps(w, np.zeros((1, 10, 7), np.float32), k.lstm_state(w, 2))


def test_builds_differ_only_in_gil(kernels_for):
    release, hold = kernels_for("c-release"), kernels_for("c-hold")
    assert release.releases_gil is True and hold.releases_gil is False
    h = [k.clib.ffi.string(k.clib.lib.sl_source_hash()) for k in (release, hold)]
    assert h[0] == h[1]  # same C source


def test_unknown_kernel():
    with pytest.raises(ValueError, match="valid: torch, c-release, c-hold, python"):
        get_kernels("cuda")


# -- the servers' hook --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KERNELS)
def test_apply_kernel_lstm_serves_same_forecast(kind, lstm_full, kernels_for):
    kernels_for(kind)
    served = apply_kernel(lstm_full, kind)
    assert served.name == "lstm_forecaster"
    rng = np.random.default_rng(2)
    reqs = [lstm_full.make_input(n, rng) for n in (96, 200, 30)]  # mixed lookbacks, 3 chunks
    want = lstm_full.infer(reqs)
    got = served.infer(reqs)
    for a, b in zip(got, want, strict=True):
        assert np.abs(a["forecast"] - b["forecast"]).max() <= TOL * 10  # de-normalized units
    batch = served.preprocess(reqs)
    unstaged = served.forward_unstaged(batch).normalized.numpy()
    staged = served.forward(batch).normalized.numpy()
    assert np.abs(unstaged - staged).max() <= 1e-5


@pytest.mark.parametrize("kind", KERNELS)
def test_apply_kernel_mobilenet(kind, kernels_for):
    kernels_for(kind)
    model = get_model("mobilenet_v2", variant="tiny")
    served = apply_kernel(model, kind)
    rng = np.random.default_rng(0)
    reqs = [model.make_input(None, rng) for _ in range(3)]
    assert torch.equal(served.preprocess(reqs), model.preprocess(reqs))
    out, ref = served.infer(reqs), model.infer(reqs)
    assert np.abs(out[0]["probabilities"] - ref[0]["probabilities"]).max() <= 1e-5


def test_apply_kernel_types_and_pickle(lstm_full):
    kind = "c-release" if get_kernels("c-release").name == "c-release" else "python"
    served = apply_kernel(lstm_full, kind)
    assert isinstance(served, KernelLstm) and served.kernel == kind
    assert type(lstm_full) is not KernelLstm  # the original is untouched
    clone = pickle.loads(pickle.dumps(served))
    assert clone.kernel == kind and "_kernel_weights" not in clone.__dict__
    x = lstm_full.preprocess([lstm_full.make_input(None, np.random.default_rng(0))])
    assert np.abs(
        clone.forward(x).normalized.numpy() - served.forward(x).normalized.numpy()
    ).max() == 0
    assert type(apply_kernel(served, "torch")) is type(lstm_full)
    assert apply_kernel(lstm_full, "torch") is lstm_full
    mob = apply_kernel(get_model("mobilenet_v2", variant="tiny"), "python")
    assert isinstance(mob, KernelMobileNet)
    bert = get_model("distilbert", variant="tiny")
    assert apply_kernel(bert, "c-hold") is bert  # no kernel for it: served unchanged
    with pytest.raises(ValueError):
        apply_kernel(lstm_full, "gpu")


def test_default_image_normalisation_is_mobilenets():
    from servelab.ffi.kernels import CIFAR10_MEAN, CIFAR10_STD
    from servelab.servers.zoo import mobilenet

    assert (CIFAR10_MEAN, CIFAR10_STD) == (mobilenet.CIFAR10_MEAN, mobilenet.CIFAR10_STD)
