"""The Open Inference Protocol v2 endpoints, independent of any web framework.

Both HTTP front ends (Flask on waitress, FastAPI on uvicorn) are thin adapters over
:class:`OipApi`: they read the body (bounded), call :meth:`OipApi.begin_infer`, wait for the
ticket their own way (a blocking wait in a WSGI thread, an awaited future on the event loop),
and send :meth:`OipApi.finish_infer`'s :class:`Reply`.

Status codes: 400 malformed JSON / wrong datatype / wrong shape / bad parameter (the message
names the field), 404 unknown model, 413 body over the cap, 503 queue full or draining (with
``Retry-After``), 504 deadline, 500 the model failed or its worker died.  Request
``parameters`` may carry ``priority`` (int >= 0, lower = more urgent) and ``timeout_ms``
(Triton's ``timeout`` in microseconds is accepted too).
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from servelab import __version__
from servelab.core.requests import Request
from servelab.servers.engine import Engine
from servelab.servers.metrics import ServerMetrics
from servelab.servers.oip import (
    HEADER_LENGTH,
    InferRequest,
    OipError,
    decode_request,
    encode_response,
    error_body,
    model_metadata,
)
from servelab.servers.runner import split_rows
from servelab.servers.tickets import ServeError, Ticket
from servelab.servers.zoo.base import ZooModel

log = logging.getLogger(__name__)

JSON = {"Content-Type": "application/json"}
MAX_ROWS = 1024
"""Most rows (batch dimension) one request may carry; beyond, 400 (Triton's max_batch_size)."""
READ_TIMEOUT_S = 30.0
"""Longest a client may take to send one request, head and body (then 408 and close)."""
INFER_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/[^/]+)?/infer$")
"""``POST`` here is an infer request (group 1: the model)."""
DECODE_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
                 RecursionError)
"""What a codec gap could raise on hostile input: answered 400, never 500 (and logged)."""
STATUS_LABEL = {
    200: "ok", 400: "bad_request", 404: "not_found", 413: "too_large", 500: "error",
    503: "rejected", 504: "timeout",
}


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))


@dataclass
class Pending:
    """An admitted inference request, waiting for its ticket."""

    model: str
    request: Request
    infer: InferRequest
    t0: float

    @property
    def ticket(self) -> Ticket:
        return self.request.payload  # type: ignore[no-any-return]


HTTP_FOR = {"ok": 200, "bad_input": 400, "error": 500, "rejected": 503, "unavailable": 503,
            "timeout": 504}
"""The HTTP status of each engine outcome (``servers.tickets.OUTCOMES``)."""


def error_reply(status: int, message: str, retry_after: int | None = None) -> Reply:
    headers = dict(JSON)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return Reply(status, error_body(message), headers)


def _json_reply(obj: Any, status: int = 200) -> Reply:
    return Reply(status, json.dumps(obj).encode())


def _parameter(params: Mapping[str, Any], name: str, kind: str) -> Any:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OipError(f"parameter '{name}' must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise OipError(f"parameter '{name}' must be a non-negative number, got {value}")
    if kind == "int" and value != int(value):
        raise OipError(f"parameter '{name}' must be an integer, got {value}")
    return int(value) if kind == "int" else float(value)


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo ``Content-Encoding: gzip|deflate`` (tritonclient can compress requests), refusing
    to inflate beyond ``limit`` bytes (413)."""
    if not encoding or encoding == "identity":
        return body
    if encoding not in ("gzip", "deflate"):
        raise OipError(f"unsupported Content-Encoding {encoding!r}; valid: gzip, deflate", 415)
    d = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as exc:
        raise OipError(f"body is not valid {encoding}: {exc}") from None
    if len(out) > limit or d.unconsumed_tail:
        raise OipError(f"decompressed body exceeds the {limit}-byte cap", 413)
    return out


class OipApi:
    """The protocol endpoints over one engine.

    ``info`` returns the server's description for ``GET /servelab/stats`` (workers, memory).
    """

    def __init__(
        self,
        engine: Engine,
        models: Mapping[str, ZooModel],
        metrics: ServerMetrics,
        max_request_bytes: int,
        server_name: str = "servelab",
        info: Callable[[], dict[str, Any]] | None = None,
    ):
        self.engine = engine
        self.models = dict(models)
        self.metrics = metrics
        self.max_request_bytes = max_request_bytes
        self.server_name = server_name
        self.info = info or dict
        self.max_rows = MAX_ROWS
        self.read_timeout_s = READ_TIMEOUT_S
        """The front ends read these on every request: a test may lower them on a live server."""
        self.resize: Callable[[int], None] | None = None
        """Set by a server whose pool can change size in place (the thread pool)."""
        self.ready = False
        self.active = 0  # requests inside an infer handler
        self._active_lock = threading.Lock()

    # -- health and metadata -----------------------------------------------------------------
    def live(self) -> Reply:
        return _json_reply({"live": True})

    def is_ready(self) -> bool:
        return self.ready and self.engine.accepting

    def health_ready(self) -> Reply:
        ok = self.is_ready()
        return _json_reply({"ready": ok}, 200 if ok else 503)

    def server_metadata(self) -> Reply:
        return _json_reply({
            "name": self.server_name, "version": __version__,
            "extensions": ["binary_tensor_data", "parameters"],
        })

    def _model(self, name: str) -> ZooModel | None:
        return self.models.get(name)

    def model_metadata(self, name: str) -> Reply:
        m = self._model(name)
        if m is None:
            return self._not_found(name)
        return _json_reply(model_metadata(name, m.inputs, m.outputs))

    def model_ready(self, name: str) -> Reply:
        if self._model(name) is None:
            return self._not_found(name)
        ok = self.is_ready()
        return _json_reply({"name": name, "ready": ok}, 200 if ok else 503)

    def _not_found(self, name: str) -> Reply:
        return error_reply(404, f"unknown model '{name}'; served: {', '.join(self.models)}")

    def metrics_reply(self) -> Reply:
        return Reply(200, self.metrics.exposition(), {"Content-Type": self.metrics.content_type})

    def stats(self) -> Reply:
        e = self.engine
        return _json_reply({
            "config": e.config.to_dict(), "config_id": e.config_id, "inflight": e.inflight,
            "queue": e.queue_len(), "records": len(e.records), "wall_t0": e.wall_t0,
            **self.info(),
        })

    def configure(self, body: bytes) -> Reply:
        """``POST /servelab/config``: change the configuration in place —
        ``{"scheduler": NAME}`` (queued requests move into the new policy) and, where the
        server's pool can resize (threads), ``{"workers": N}``; anything else needs a new
        server (400 naming the field)."""
        try:
            change = json.loads(body or b"{}")
        except ValueError as exc:
            return error_reply(400, f"malformed JSON: {exc}")
        if not isinstance(change, dict):
            return error_reply(400, "expected a JSON object such as {\"scheduler\": \"sjf\"}")
        in_place = {"scheduler"} | ({"workers"} if self.resize is not None else set())
        other = sorted(set(change) - in_place)
        if other:
            return error_reply(400, f"only {sorted(in_place)} change in place on this server; "
                               f"{other} need a new server")
        if "workers" in change:
            n = change["workers"]
            if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 256:
                return error_reply(400, f"workers: an integer in 1..256, got {n!r}")
            assert self.resize is not None
            self.resize(n)
        if "scheduler" in change:
            try:
                self.engine.set_scheduler(str(change["scheduler"]))
            except ValueError as exc:
                return error_reply(400, f"scheduler: {exc}")
        e = self.engine
        return _json_reply({"config": e.config.to_dict(), "config_id": e.config_id})

    def trace(self) -> Reply:
        recs = self.engine.trace()
        return Reply(200, json.dumps(recs, default=_json_default).encode(), dict(JSON))

    # -- inference ---------------------------------------------------------------------------
    def too_large(self, content_length: int | None) -> Reply | None:
        """413 when a declared Content-Length is over the cap (checked before reading)."""
        if content_length is not None and content_length > self.max_request_bytes:
            return self._count(None, error_reply(
                413, f"request body of {content_length} bytes exceeds the "
                f"{self.max_request_bytes}-byte cap"))
        return None

    @property
    def draining(self) -> bool:
        """The server is shutting down: every reply now carries ``Connection: close``, so a
        client's kept-alive connections end one by one, each after an answer (none is cut with a
        request in it when the front end finally closes)."""
        return not self.engine.accepting

    def finish(self, reply: Reply) -> Reply:
        """``reply`` as the front end sends it (``Connection: close`` while draining)."""
        if self.draining:
            reply.headers["Connection"] = "close"
        return reply

    def front_door(self, method: str, path: str, content_length: int | None) -> Reply | None:
        """The answer to a request decided from its request line and headers alone — before its
        body is read or parsed: 413 when the declared body is over the cap, 503 (with
        ``Retry-After``) while the server drains or its queue is full.  None: read on.  Only
        infer requests are ever refused here: health, metadata and /metrics always get through.
        """
        if method != "POST":
            return None
        m = INFER_PATH.match(path)
        if m is None:
            return None
        early = self.too_large(content_length)
        if early is not None:
            return early
        return self.admission(m.group(1))

    def admission(self, model: str | None = None) -> Reply | None:
        """503 when the engine could not take the request now (draining, queue full, queue
        wait over ``max_queue_wait_ms``): the engine's own admission test
        (:meth:`Engine.refusal`), asked before the body is read."""
        error = self.engine.refusal()
        if error is None:
            return None
        return self._count(model, error_reply(503, str(error), error.retry_after))

    def body_too_large(self) -> Reply:
        return self._count(None, error_reply(
            413, f"request body exceeds the {self.max_request_bytes}-byte cap"))

    def _count(self, model: str | None, reply: Reply) -> Reply:
        label = STATUS_LABEL.get(reply.status, str(reply.status))
        self.metrics.requests.labels(model if model in self.models else "", label).inc()
        return reply

    def begin_infer(
        self, name: str, body: bytes, headers: Mapping[str, str],
        received: float | None = None,
    ) -> Reply | Pending:
        """Validate and admit; a :class:`Reply` when the request ends here (an error).
        ``received``: ``time.monotonic()`` when the request's first byte arrived (the front
        end's stamp), so the engine's time bounds count the front end's time too."""
        t0 = time.perf_counter()
        model = self._model(name)
        if model is None:
            return self._count(None, self._not_found(name))
        if len(body) > self.max_request_bytes:
            return self.body_too_large()
        try:
            body = decompress(body, headers.get("Content-Encoding"), self.max_request_bytes)
            hl = headers.get(HEADER_LENGTH)
            try:
                header_length = int(hl) if hl is not None else None
            except ValueError:
                raise OipError(f"header {HEADER_LENGTH} must be an integer, got {hl!r}") from None
            infer = decode_request(body, model.inputs, header_length)
            priority = _parameter(infer.parameters, "priority", "int")
            timeout_ms = _parameter(infer.parameters, "timeout_ms", "float")
            if timeout_ms is None:
                timeout_us = _parameter(infer.parameters, "timeout", "float")
                timeout_ms = None if not timeout_us else timeout_us / 1000.0
            for o in infer.requested_outputs or []:
                if o not in {s.name for s in model.outputs}:
                    raise OipError(f"unknown output '{o}'; model outputs: "
                                   f"{', '.join(s.name for s in model.outputs)}")
            if infer.batch_size > self.max_rows:
                first = next(iter(infer.inputs))
                raise OipError(f"input '{first}': a batch of {infer.batch_size} rows is more "
                               f"than the {self.max_rows} one request may carry")
        except OipError as exc:
            return self._count(name, error_reply(exc.status, str(exc)))
        except DECODE_ERRORS as exc:  # a gap in the codec's checks: still the client's input
            log.warning("%s: request refused by an unexpected %s: %s", name,
                        type(exc).__name__, exc)
            return self._count(name, error_reply(
                400, f"malformed request: {type(exc).__name__}: {str(exc)[:200]}"))
        rows = split_rows(infer.inputs)
        try:
            size = int(model.input_size(rows[0]))
        except Exception:
            size = 0
        try:
            waited = 0.0 if received is None else max(0.0, time.monotonic() - received)
            req = self.engine.submit(name, rows, priority, timeout_ms, infer.id, size,
                                     waited=waited)
        except ServeError as exc:
            return self._count(name, error_reply(HTTP_FOR[exc.outcome], str(exc),
                                                 exc.retry_after))
        with self._active_lock:
            self.active += 1
        return Pending(name, req, infer, t0)

    def finish_infer(self, p: Pending) -> Reply:
        """The reply for a completed ticket."""
        try:
            t = p.ticket
            if t.outcome == "ok" and t.outputs is not None:
                try:
                    body, headers = encode_response(p.model, t.outputs, p.infer)
                    reply = Reply(200, body, headers)
                except Exception as exc:  # pragma: no cover - an output the codec cannot encode
                    log.exception("encoding %s output failed", p.model)
                    reply = error_reply(500, f"could not encode the output: {exc}")
            else:
                reply = error_reply(HTTP_FOR.get(t.outcome, 500), t.error or "request failed",
                                    t.retry_after)
            self.metrics.e2e_time.labels(p.model).observe(time.perf_counter() - p.t0)
            return self._count(p.model, reply)
        finally:
            with self._active_lock:
                self.active -= 1

    def abandon(self, p: Pending) -> None:
        """The client went away before the answer (the request still runs)."""
        with self._active_lock:
            self.active -= 1


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, float) and math.isnan(o):  # pragma: no cover
        return None
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
