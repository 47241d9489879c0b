"""The OIP v2 codec: JSON and binary tensors both ways, and a 400 naming the field for every
malformed request."""

from __future__ import annotations

import json

import numpy as np
import pytest

from servelab.servers.oip import (
    HEADER_LENGTH,
    OipError,
    decode_request,
    decode_response,
    decode_tensor,
    encode_request,
    encode_response,
    error_body,
    model_metadata,
    oip_datatype,
)
from servelab.servers.zoo.base import TensorSpec

IMAGE = TensorSpec("image", "UINT8", (-1, 4, 4, 3))
TEXT = TensorSpec("text", "BYTES", (-1,))
WINDOW = TensorSpec("window", "FP32", (-1, -1, 7))


def _roundtrip(inputs, specs, binary):
    body, headers = encode_request(inputs, id="r1", parameters={"priority": 1}, binary=binary)
    hl = headers.get(HEADER_LENGTH)
    return decode_request(body, specs, int(hl) if hl else None)


@pytest.mark.parametrize("binary", [False, True])
def test_request_round_trip(binary: bool) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (2, 4, 4, 3), dtype=np.uint8)
    req = _roundtrip({"image": image}, [IMAGE], binary)
    np.testing.assert_array_equal(req.inputs["image"], image)
    assert req.inputs["image"].dtype == np.uint8
    assert req.id == "r1" and req.parameters == {"priority": 1} and req.batch_size == 2
    text = np.array(["a good film", "ünïcode"], dtype=object)
    req = _roundtrip({"text": text}, [TEXT], binary)
    assert [t.decode() for t in req.inputs["text"]] == list(text)
    window = rng.random((1, 10, 7), dtype=np.float32)
    req = _roundtrip({"window": window}, [WINDOW], binary)
    np.testing.assert_array_equal(req.inputs["window"], window)


@pytest.mark.parametrize("binary", [False, True])
def test_response_round_trip_and_requested_binary_outputs(binary: bool) -> None:
    body, headers = encode_request({"image": np.zeros((1, 4, 4, 3), np.uint8)})
    req = decode_request(body, [IMAGE])
    if binary:
        req.binary_outputs.add("*")
    outputs = {"probabilities": np.array([[0.25, 0.75]], np.float32),
               "label": np.array([1], np.int64)}
    body, headers = encode_response("m", outputs, req)
    assert (HEADER_LENGTH in headers) == binary
    hl = headers.get(HEADER_LENGTH)
    got = decode_response(body, int(hl) if hl else None)
    for k, v in outputs.items():
        np.testing.assert_array_equal(got[k], v)
        assert got[k].dtype == v.dtype


def test_nested_json_data_is_accepted() -> None:
    body = json.dumps({"inputs": [{"name": "window", "datatype": "FP32", "shape": [1, 2, 7],
                                   "data": [[[float(i) for i in range(7)]] * 2]}]}).encode()
    assert decode_request(body, [WINDOW]).inputs["window"].shape == (1, 2, 7)


def _json(obj) -> bytes:
    return json.dumps(obj).encode()


def _image(**over):
    t = {"name": "image", "datatype": "UINT8", "shape": [1, 4, 4, 3], "data": [0] * 48}
    t.update(over)
    return {"inputs": [t]}


@pytest.mark.parametrize("body,needle", [
    (b"{oops", "malformed JSON"),
    (b"[]", "JSON object"),
    (_json({}), "'inputs'"),
    (_json({"inputs": [{"datatype": "UINT8"}]}), "'name'"),
    (_json(_image(name="pixels")), "'pixels'"),
    (_json(_image(datatype="FP32")), "'image': datatype FP32"),
    (_json(_image(datatype="COMPLEX")), "unknown datatype"),
    (_json(_image(shape=[1, 5, 4, 3], data=[0] * 60)), "'image': shape"),
    (_json(_image(shape="1x4")), "'shape'"),
    (_json(_image(data=[0] * 47)), "do not fill shape"),
    (_json(_image(data="abc")), "'data' must be a list"),
    (_json(_image(data=[None] * 48)), "'image'"),
    (_json(_image(data=["x"] * 48)), "'image'"),
    (_json(_image(data=[300] * 48)), "'image'"),
    (_json(_image(shape=[0, 4, 4, 3], data=[])), "empty batch"),
    (_json({"inputs": [], "parameters": 5}), "'inputs'"),
    (_json({**_image(), "parameters": [1]}), "'parameters'"),
    (_json({**_image(), "outputs": [{"nam": "x"}]}), "'outputs'"),
    (b"[" * 100_000, "nested too deeply"),
    (_json(_image(data=[[[[[[0]]]]]] * 48)), "'image': 'data' is nested deeper"),
    (_json(_image(shape=[1, 4, 4, 10**12])), "'image': 'shape' has a dimension over"),
    (_json(_image(shape=[1] * 17, data=[0])), "'image': 'shape' has 17 dimensions"),
    (_json(_image(shape=[1, 4, 0, 3], data=[])), "'image': shape [1, 4, 0, 3] does not match"),
    (_json(_image(name=["image"])), "'name' string"),
    (_json(_image(datatype={"x": 1})), "'image': unknown datatype"),
    (_json(_image(parameters=[1])), "'image': 'parameters' must be an object"),
    (_json({"inputs": [_image()["inputs"][0]] * 2}), "'image' is given twice"),
    (_json({**_image(), "id": [1]}), "'id'"),
    (_json({**_image(), "outputs": "probabilities"}), "'outputs' must be a list"),
])
def test_malformed_requests_name_the_field(body: bytes, needle: str) -> None:
    with pytest.raises(OipError) as info:
        decode_request(body, [IMAGE])
    assert info.value.status == 400
    assert needle in str(info.value)


def test_a_lone_surrogate_in_a_bytes_string_is_a_400_naming_the_input() -> None:
    body = b'{"inputs":[{"name":"text","datatype":"BYTES","shape":[2],"data":["ok","\\ud800 x"]}]}'
    with pytest.raises(OipError, match="'text': BYTES element 1 is not valid Unicode"):
        decode_request(body, [TEXT])


def test_missing_input_and_batch_mismatch() -> None:
    a = TensorSpec("a", "FP32", (-1, 2))
    b = TensorSpec("b", "FP32", (-1, 2))
    body, _ = encode_request({"a": np.zeros((1, 2), np.float32)})
    with pytest.raises(OipError, match="missing input"):
        decode_request(body, [a, b])
    body, _ = encode_request({"a": np.zeros((1, 2), np.float32), "b": np.zeros((2, 2), np.float32)})
    with pytest.raises(OipError, match="batch dimension"):
        decode_request(body, [a, b])


def test_binary_payload_errors() -> None:
    body, headers = encode_request({"image": np.zeros((1, 4, 4, 3), np.uint8)}, binary=True)
    hl = int(headers[HEADER_LENGTH])
    with pytest.raises(OipError, match="exceeds the payload"):
        decode_request(body[:-5], [IMAGE], hl)
    with pytest.raises(OipError, match="outside the body"):
        decode_request(body, [IMAGE], len(body) + 10)
    with pytest.raises(OipError, match="truncated BYTES"):
        decode_tensor({"name": "t", "datatype": "BYTES", "shape": [1]}, b"\x05\x00")


def test_nothing_is_evaluated() -> None:
    """Strings that look like code stay data; no pickle/eval path exists for any datatype."""
    text = np.array(["__import__('os').system('false')"], dtype=object)
    body, _ = encode_request({"text": text})
    assert decode_request(body, [TEXT]).inputs["text"][0] == text[0].encode()


def test_helpers() -> None:
    assert json.loads(error_body("boom")) == {"error": "boom"}
    meta = model_metadata("m", [IMAGE], [TEXT])
    assert meta["inputs"] == [IMAGE.to_oip()] and meta["outputs"] == [TEXT.to_oip()]
    assert oip_datatype(np.zeros(1, np.float32)) == "FP32"
    assert oip_datatype(np.array(["a"], dtype=object)) == "BYTES"
    with pytest.raises(OipError, match="boom"):
        decode_response(error_body("boom"))


@pytest.mark.parametrize("datatype,data,needle", [
    ("UINT8", [0.5, 1], "integers"),
    ("INT64", [True, 1], "integers"),
    ("FP32", [True, 1.0], "numbers"),
    ("BOOL", [1, 0], "booleans"),
    ("INT8", [1, 200], "out of range"),
    ("FP32", ["1", "2"], "numbers"),
    ("FP32", [1, None], "numbers"),
])
def test_json_numbers_must_fit_the_datatype(datatype: str, data: list, needle: str) -> None:
    obj = {"name": "x", "datatype": datatype, "shape": [2], "data": data}
    with pytest.raises(OipError, match=needle):
        decode_tensor(obj)


def test_json_numbers_convert_exactly() -> None:
    arr = decode_tensor({"name": "x", "datatype": "FP16", "shape": [2], "data": [1, 2.5]})
    assert arr.dtype == np.float16 and arr.tolist() == [1.0, 2.5]
    arr = decode_tensor({"name": "x", "datatype": "UINT8", "shape": [0], "data": []})
    assert arr.dtype == np.uint8 and arr.shape == (0,)
