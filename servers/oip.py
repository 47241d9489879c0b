"""The Open Inference Protocol v2 (KServe / Triton REST) tensor codec, with validation.

Pure functions shared by every server (decode a request, encode a response) and by the load
generator (encode a request, decode a response).  JSON tensors carry their data flattened in
row-major order (nested lists are accepted too); ``BYTES`` elements are strings.  The Triton
binary-tensor extension is supported both ways: the JSON header is followed by raw tensor bytes
and its length is given by the ``Inference-Header-Content-Length`` HTTP header.

Nothing here evaluates or unpickles anything: numbers become arrays through ``np.asarray`` /
``np.frombuffer`` with an explicit dtype, and every mismatch raises :class:`OipError` with the
HTTP status and a message that names the field — including hostile input: JSON nested deeper
than the parser goes (``"[" * 100000``), strings that are not valid Unicode (a lone UTF-16 surrogate such
as ``"\ud800"`` in a BYTES element), wrong JSON types anywhere, shapes of more than
:data:`MAX_RANK` dimensions or a dimension over :data:`MAX_DIM`, and empty dimensions.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from servelab.servers.zoo.base import TensorSpec

HEADER_LENGTH = "Inference-Header-Content-Length"
MAX_RANK = 16
"""Most dimensions a tensor may have."""
MAX_DIM = 2**31 - 1
"""Largest size of one dimension."""

DTYPES: dict[str, Any] = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
    "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
    "BYTES": np.object_,
}


class OipError(Exception):
    """A request the protocol layer refuses: ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def oip_datatype(arr: np.ndarray) -> str:
    if arr.dtype == np.object_ or arr.dtype.kind in "SU":
        return "BYTES"
    for name, dt in DTYPES.items():
        if dt is not np.object_ and arr.dtype == np.dtype(dt):
            return name
    raise ValueError(f"no OIP datatype for numpy dtype {arr.dtype}")


# -- tensors --------------------------------------------------------------------------------------
def _bytes_elements(arr: np.ndarray) -> list[bytes]:
    return [x if isinstance(x, bytes) else str(x).encode() for x in arr.reshape(-1).tolist()]


def encode_tensor(name: str, arr: np.ndarray, binary: bool = False) -> tuple[dict[str, Any], bytes]:
    """One tensor as its JSON object, and its raw bytes when ``binary`` (else b'')."""
    arr = np.asarray(arr)
    datatype = oip_datatype(arr)
    obj: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(arr.shape)}
    if binary:
        if datatype == "BYTES":
            raw = b"".join(struct.pack("<I", len(b)) + b for b in _bytes_elements(arr))
        else:
            raw = np.ascontiguousarray(arr).tobytes()
        obj["parameters"] = {"binary_data_size": len(raw)}
        return obj, raw
    if datatype == "BYTES":
        obj["data"] = [b.decode("utf-8", "replace") for b in _bytes_elements(arr)]
    else:
        obj["data"] = arr.reshape(-1).tolist()
    return obj, b""


def _flatten(data: Any, where: str, rank: int) -> list[Any]:
    """``data`` flattened row-major (no recursion: nesting is bounded by the tensor's rank)."""
    if not isinstance(data, list):
        raise OipError(f"{where}: 'data' must be a list")
    if not data or not isinstance(data[0], list):
        return data
    out: list[Any] = []
    stack = [(iter(data), 1)]
    while stack:
        it, depth = stack[-1]
        for x in it:
            if isinstance(x, list):
                if depth >= max(rank, 1):
                    raise OipError(f"{where}: 'data' is nested deeper than its shape's "
                                   f"{rank} dimensions")
                stack.append((iter(x), depth + 1))
                break
            out.append(x)
        else:
            stack.pop()
    return out


def _text(x: str, where: str, k: int) -> bytes:
    try:
        return x.encode()
    except UnicodeEncodeError as exc:
        raise OipError(f"{where}: BYTES element {k} is not valid Unicode ({exc.reason} at "
                       f"position {exc.start}: a lone UTF-16 surrogate?)") from None


def decode_tensor(obj: Any, raw: bytes | None = None, where: str = "input") -> np.ndarray:
    """Turn one JSON tensor object (plus its binary payload, if any) into an array."""
    if not isinstance(obj, dict):
        raise OipError(f"{where}: each tensor must be a JSON object")
    name = obj.get("name")
    where = f"{where} '{name}'" if isinstance(name, str) and name else where
    datatype = obj.get("datatype")
    if not isinstance(datatype, str) or datatype not in DTYPES:
        raise OipError(f"{where}: unknown datatype {_short(datatype)}; valid: {', '.join(DTYPES)}")
    shape = obj.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise OipError(f"{where}: 'shape' must be a list of non-negative integers")
    if len(shape) > MAX_RANK:
        raise OipError(f"{where}: 'shape' has {len(shape)} dimensions, more than {MAX_RANK}")
    if any(d > MAX_DIM for d in shape):
        raise OipError(f"{where}: 'shape' has a dimension over {MAX_DIM}")
    n = math.prod(shape)
    if raw is not None:
        if datatype == "BYTES":
            items, off = [], 0
            while off < len(raw):
                if off + 4 > len(raw):
                    raise OipError(f"{where}: truncated BYTES element")
                (k,) = struct.unpack_from("<I", raw, off)
                items.append(raw[off + 4 : off + 4 + k])
                off += 4 + k
            if len(items) != n:
                raise OipError(f"{where}: {len(items)} BYTES elements for shape {shape}")
            return np.array(items, dtype=object).reshape(shape)
        dt = np.dtype(DTYPES[datatype])
        if len(raw) != n * dt.itemsize:
            raise OipError(f"{where}: {len(raw)} bytes of data for shape {shape} {datatype}")
        return np.frombuffer(raw, dtype=dt).reshape(shape)
    data = _flatten(obj.get("data"), where, len(shape))
    if len(data) != n:
        raise OipError(f"{where}: {len(data)} data elements do not fill shape {shape}")
    if datatype == "BYTES":
        if not all(isinstance(x, str | bytes) for x in data):
            raise OipError(f"{where}: BYTES data must be strings")
        items = [_text(x, where, k) if isinstance(x, str) else x for k, x in enumerate(data)]
        return np.array(items, dtype=object).reshape(shape)
    return _numbers(data, datatype, where).reshape(shape)


def _numbers(data: list[Any], datatype: str, where: str) -> np.ndarray:
    """JSON numbers -> an array of ``datatype``, refusing what would silently change values:
    floats (or booleans) for integer types, numbers for BOOL, out-of-range integers."""
    dt = np.dtype(DTYPES[datatype])
    if not data:
        return np.zeros(0, dtype=dt)
    if dt.kind != "b" and bool in set(map(type, data)):  # np.asarray would make them 0/1
        raise OipError(f"{where}: data must be {_expect(dt)} for datatype {datatype}, "
                       "got booleans")
    try:
        raw = np.asarray(data)
    except (TypeError, ValueError) as exc:
        raise OipError(f"{where}: data is not a flat list of numbers: {exc}") from None
    kind = raw.dtype.kind
    if dt.kind == "b":
        ok = kind == "b"
    elif dt.kind in "iu":
        ok = kind in "iu"
        if ok:
            info = np.iinfo(dt)
            ok = info.min <= int(raw.min()) and int(raw.max()) <= info.max
            if not ok:
                raise OipError(f"{where}: values out of range for datatype {datatype}")
    else:
        ok = kind in "iuf"
        if ok:
            with np.errstate(over="ignore"):
                out = raw.astype(dt, copy=False)
            if not np.isfinite(out).all() and np.isfinite(raw).all():
                raise OipError(f"{where}: values out of range for datatype {datatype}")
            return out
    if not ok:
        found = {"b": "booleans", "f": "non-integers", "U": "strings",
                 "O": "mixed values (an integer too large?)"}
        raise OipError(f"{where}: data must be {_expect(dt)} for datatype {datatype}, "
                       f"got {found.get(kind, raw.dtype.name)}")
    return raw.astype(dt, copy=False)


def _short(value: Any, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters (hostile input can be megabytes long)."""
    try:
        text = repr(value)
    except RecursionError:  # a deeply nested list
        return f"a nested {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _expect(dt: np.dtype) -> str:
    return {"b": "booleans", "i": "integers", "u": "integers"}.get(dt.kind, "numbers")


def check_tensor(arr: np.ndarray, datatype: str, spec: TensorSpec, where: str = "input") -> None:
    """Validate a decoded tensor against its declared spec (dtype, rank, fixed dims)."""
    where = f"{where} '{spec.name}'"
    if datatype != spec.datatype:
        raise OipError(f"{where}: datatype {datatype}, expected {spec.datatype}")
    if len(arr.shape) != len(spec.shape) or any(
        s != -1 and s != d for s, d in zip(spec.shape, arr.shape, strict=True)
    ):
        raise OipError(f"{where}: shape {list(arr.shape)} does not match {list(spec.shape)}")
    if arr.shape and arr.shape[0] == 0:
        raise OipError(f"{where}: empty batch")
    if 0 in arr.shape:
        raise OipError(f"{where}: shape {list(arr.shape)} has an empty dimension")


# -- requests -------------------------------------------------------------------------------------
@dataclass
class InferRequest:
    inputs: dict[str, np.ndarray]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    binary_outputs: set[str] = field(default_factory=set)
    requested_outputs: list[str] | None = None

    @property
    def batch_size(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0]) if self.inputs else 0


def _split_body(body: bytes, header_length: int | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    if header_length < 0 or header_length > len(body):
        raise OipError(f"{HEADER_LENGTH} {header_length} is outside the body ({len(body)} bytes)")
    return body[:header_length], body[header_length:]


def _load_json(text: bytes) -> dict[str, Any]:
    """The body's JSON object: orjson (about 5x faster than the standard library on an image
    body), and the standard library for what orjson refuses — it accepts lone surrogates, NaN
    and out-of-range numbers, so that the field checks after it can name the field at fault;
    what neither parses is malformed."""
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        obj = _load_json_slowly(text)
    if not isinstance(obj, dict):
        raise OipError("malformed request: the body must be a JSON object")
    return obj


def _load_json_slowly(text: bytes) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise OipError("malformed JSON: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise OipError(f"malformed JSON: {exc}") from None


def decode_request(
    body: bytes, specs: Sequence[TensorSpec], header_length: int | None = None
) -> InferRequest:
    """Parse and validate an infer request body against the model's input specs."""
    head, tail = _split_body(body, header_length)
    obj = _load_json(head)
    inputs = obj.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise OipError("field 'inputs' must be a non-empty list")
    params = obj.get("parameters")
    params = {} if params is None else params
    if not isinstance(params, dict):
        raise OipError("field 'parameters' must be an object")
    by_name = {s.name: s for s in specs}
    out: dict[str, np.ndarray] = {}
    offset = 0
    for t in inputs:
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise OipError("each entry of 'inputs' must be an object with a 'name' string")
        name = t["name"]
        if name not in by_name:
            raise OipError(f"unknown input {_short(name)}; expected: {', '.join(by_name)}")
        if name in out:
            raise OipError(f"input '{name}' is given twice")
        tparams = _object(t.get("parameters"), f"input '{name}': 'parameters'")
        size = tparams.get("binary_data_size")
        raw = None
        if size is not None:
            if (not isinstance(size, int) or isinstance(size, bool) or size < 0
                    or offset + size > len(tail)):
                raise OipError(f"input '{name}': binary_data_size {_short(size)} exceeds the "
                               "payload")
            raw, offset = tail[offset : offset + size], offset + size
        arr = decode_tensor(t, raw, "input")
        check_tensor(arr, t["datatype"], by_name[name])
        out[name] = arr
    missing = [n for n in by_name if n not in out]
    if missing:
        raise OipError(f"missing input(s): {', '.join(missing)}")
    batches = {a.shape[0] for a in out.values()}
    if len(batches) > 1:
        raise OipError(f"inputs disagree on the batch dimension: {sorted(batches)}")
    requested = obj.get("outputs")
    binary: set[str] = set()
    names = None
    if requested is not None and not isinstance(requested, list):
        raise OipError("field 'outputs' must be a list")
    if isinstance(requested, list):
        names = []
        for o in requested:
            if not isinstance(o, dict) or not isinstance(o.get("name"), str):
                raise OipError("each entry of 'outputs' must be an object with a 'name' string")
            names.append(o["name"])
            if _object(o.get("parameters"), f"output '{o['name']}': 'parameters'").get(
                    "binary_data"):
                binary.add(o["name"])
    if params.get("binary_data_output"):
        binary.add("*")
    rid = obj.get("id")
    if rid is not None and (isinstance(rid, bool) or not isinstance(rid, str | int)):
        raise OipError("field 'id' must be a string")
    return InferRequest(out, str(rid) if rid is not None else None, params, binary, names)


def _object(value: Any, where: str) -> dict[str, Any]:
    """A JSON object field that may be absent (``{}``), or a 400 naming it."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise OipError(f"{where} must be an object")
    return value


def encode_request(
    inputs: Mapping[str, np.ndarray], id: str | None = None,
    parameters: Mapping[str, Any] | None = None, binary: bool = False,
) -> tuple[bytes, dict[str, str]]:
    """An infer request body and its extra HTTP headers (client side, e.g. the load generator)."""
    tensors, raws = [], []
    for name, arr in inputs.items():
        obj, raw = encode_tensor(name, arr, binary)
        tensors.append(obj)
        raws.append(raw)
    req: dict[str, Any] = {"inputs": tensors}
    if id is not None:
        req["id"] = id
    if parameters:
        req["parameters"] = dict(parameters)
    head = json.dumps(req, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json"}
    if binary:
        headers = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(head))}
        return head + b"".join(raws), headers
    return head, headers


# -- responses ------------------------------------------------------------------------------------
def encode_response(
    model_name: str, outputs: Mapping[str, np.ndarray], request: InferRequest | None = None,
    model_version: str = "1",
) -> tuple[bytes, dict[str, str]]:
    """An infer response body and headers; outputs the request asked for as binary go binary."""
    wanted = request.requested_outputs if request is not None else None
    binary = request.binary_outputs if request is not None else set()
    tensors, raws = [], []
    for name, arr in outputs.items():
        if wanted is not None and name not in wanted:
            continue
        obj, raw = encode_tensor(name, arr, "*" in binary or name in binary)
        tensors.append(obj)
        raws.append(raw)
    resp: dict[str, Any] = {"model_name": model_name, "model_version": model_version, "outputs": tensors}
    if request is not None and request.id is not None:
        resp["id"] = request.id
    head = json.dumps(resp, separators=(",", ":")).encode()
    if any(raws):
        return head + b"".join(raws), {
            "Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(head)),
        }
    return head, {"Content-Type": "application/json"}


def decode_response(body: bytes, header_length: int | None = None) -> dict[str, np.ndarray]:
    """Parse an infer response into named arrays (client side)."""
    head, tail = _split_body(body, header_length)
    obj = _load_json(head)
    if "error" in obj:
        raise OipError(str(obj["error"]))
    out, offset = {}, 0
    for t in obj.get("outputs", []):
        size = (t.get("parameters") or {}).get("binary_data_size")
        raw = None
        if size is not None:
            raw, offset = tail[offset : offset + size], offset + size
        out[t["name"]] = decode_tensor(t, raw, "output")
    return out


def error_body(message: str) -> bytes:
    """The OIP error object: ``{"error": "..."}``."""
    return json.dumps({"error": message}).encode()


def model_metadata(name: str, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
                   platform: str = "pytorch", versions: Sequence[str] = ("1",)) -> dict[str, Any]:
    """``GET /v2/models/{name}``: the model metadata object."""
    return {
        "name": name, "versions": list(versions), "platform": platform,
        "inputs": [s.to_oip() for s in inputs], "outputs": [s.to_oip() for s in outputs],
    }
