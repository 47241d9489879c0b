"""The peers of ``servelab bench serve --peers``: the naive FastAPI + torch server answers an
OIP v2 JSON infer request like servelab does (same model, same outputs), and a peer whose
package is missing says how to install it."""

from __future__ import annotations

import numpy as np
import pytest

from servelab.loadgen import peers
from servelab.servers.oip import decode_response, encode_request


def test_the_naive_peer_answers_an_oip_request():
    from fastapi.testclient import TestClient

    from servelab.loadgen.peers.naive_fastapi import make_app
    from servelab.servers.models import get_servable

    model = get_servable("mobilenet_v2", "tiny")
    image = model.make_input(None, np.random.default_rng(0))
    client = TestClient(make_app("tiny"))
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/models/mobilenet_v2/ready").status_code == 200
    assert client.get("/v2/models/distilbert/ready").status_code == 404
    body, headers = encode_request(image)
    r = client.post("/v2/models/mobilenet_v2/infer", content=body, headers=headers)
    assert r.status_code == 200, r.text
    out = decode_response(r.content)
    want = model.postprocess(model.forward_unstaged(model.preprocess([image])), 1)[0]
    assert out["probabilities"].shape == (1, 10)
    np.testing.assert_allclose(out["probabilities"], want["probabilities"], rtol=1e-5)
    bad = client.post("/v2/models/mobilenet_v2/infer", json={"inputs": [{"name": "image"}]})
    assert bad.status_code == 422  # pydantic: the field missing is named
    assert "shape" in bad.text


def test_a_missing_peer_says_how_to_install_it(monkeypatch):
    real = peers.importlib.util.find_spec
    monkeypatch.setattr(peers.importlib.util, "find_spec",
                        lambda name: None if name == "ray" else real(name))
    assert peers.missing("ray-serve") == "ray not installed: pip install -e '.[ray]'"
    assert peers.missing("naive-fastapi") is None
    monkeypatch.setattr(peers, "IMPORTS", {"naive-fastapi": "servelab_no_such_module"})
    assert peers.missing("naive-fastapi").startswith("servelab_no_such_module does not import")
    with pytest.raises(ValueError, match="unknown peer"):
        peers.missing("triton")
