"""The seeded-weight cache: a cached load is the fresh build bit for bit, and a bad file is
rebuilt rather than used."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from servelab.servers.zoo import get_model, weight_cache


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVELAB_CACHE", str(tmp_path))
    monkeypatch.delenv("SERVELAB_WEIGHT_CACHE", raising=False)
    return tmp_path / "weights"


def _same(a, b) -> bool:
    ta, tb = weight_cache.tensors(a), weight_cache.tensors(b)
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def _loads(monkeypatch) -> list[str]:
    """Record every cache hit, and fail on any store (a hit must not rebuild)."""
    hits: list[str] = []
    load = weight_cache._load

    def spy(model, file):
        hits.append(model.name)
        return load(model, file)

    def fail(module, file):
        raise AssertionError("built and stored instead of loaded from the cache")

    monkeypatch.setattr(weight_cache, "_load", spy)
    monkeypatch.setattr(weight_cache, "_store", fail)
    return hits


# DistilBERT has a non-persistent buffer (position_ids); MobileNetV2 computes its BatchNorm
# statistics after construction; the LSTM is plain.
@pytest.mark.parametrize("name", ["mobilenet_v2", "distilbert", "lstm_forecaster"])
def test_cached_load_is_the_fresh_build(cache, monkeypatch, name):
    built = get_model(name, variant="tiny")
    inputs = built.make_input(None, np.random.default_rng(1))
    expected = built.infer([inputs])[0]
    assert weight_cache.path(built).is_file()
    hits = _loads(monkeypatch)
    model = get_model(name, variant="tiny")
    cached = model.load()
    assert hits == [name]
    assert _same(built.load(), cached)
    assert not cached.training
    assert not any(p.requires_grad for p in cached.parameters())
    for k, v in model.infer([inputs])[0].items():
        np.testing.assert_array_equal(np.asarray(v), np.asarray(expected[k]))


def test_key_follows_seed_and_variant(cache):
    keys = {weight_cache.key(get_model("lstm_forecaster", variant=v, seed=s))
            for v in ("tiny", "full") for s in (0, 1)}
    assert len(keys) == 4
    a = get_model("lstm_forecaster", variant="tiny", seed=0).load()
    b = get_model("lstm_forecaster", variant="tiny", seed=1).load()
    assert not _same(a, b)


def test_damaged_or_mismatched_file_is_rebuilt(cache, caplog):
    model = get_model("lstm_forecaster", variant="tiny")
    fresh = model.load()
    file = weight_cache.path(model)
    file.write_bytes(b"not a torch file")
    with caplog.at_level(logging.WARNING, logger=weight_cache.__name__):
        again = get_model("lstm_forecaster", variant="tiny").load()
    assert "unusable" in caplog.text and _same(fresh, again)
    # A file of the right format with a wrong shape (an architecture change the key missed).
    stored = torch.load(file, weights_only=True)
    name = next(iter(stored))
    stored[name] = torch.zeros(3, 3)
    torch.save(stored, file)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=weight_cache.__name__):
        third = get_model("lstm_forecaster", variant="tiny").load()
    assert "stored (3, 3)" in caplog.text and _same(fresh, third)


def test_off_switch_and_explicit_weights_skip_the_cache(cache, monkeypatch, tmp_path):
    monkeypatch.setenv("SERVELAB_WEIGHT_CACHE", "0")
    module = get_model("lstm_forecaster", variant="tiny").load()
    assert not cache.exists()
    monkeypatch.delenv("SERVELAB_WEIGHT_CACHE")
    ckpt = tmp_path / "ckpt.pt"
    torch.save(module.state_dict(), ckpt)
    get_model("lstm_forecaster", variant="tiny", weights=ckpt).load()
    assert not cache.exists()
