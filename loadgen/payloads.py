"""Request bodies, built before the run so that sending one costs a single socket write.

Every distinct (model, input size, priority, timeout) of a schedule gets one complete HTTP/1.1
request — request line, headers and an OIP v2 body from :func:`servelab.servers.oip.encode_request`
— built once from the model zoo's ``make_input(size, rng)``.  Each scheduled request then only
points at its prebuilt bytes (:attr:`Payloads.index`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from servelab.loadgen.schedule import Schedule
from servelab.servers.oip import encode_request

log = logging.getLogger(__name__)

MakeInput = Callable[[str, int, np.random.Generator], dict[str, np.ndarray]]
"""``make_input(model, input_size, rng)`` -> one request's named input arrays (batch 1)."""


def zoo_make_input(variant: str = "tiny") -> MakeInput:
    """Inputs from the model zoo (``get_model(name, variant).make_input(size, rng)``).

    The variant only changes the model's weights, not its input schema, so ``tiny`` (cheap to
    construct, never loaded here) serves any server.
    """
    from servelab.servers.zoo import get_model

    cache: dict[str, Any] = {}

    def make(model: str, size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        if model not in cache:
            cache[model] = get_model(model, variant=variant)
        return cache[model].make_input(int(size), rng)

    return make


def servable_make_input(variant: str = "tiny") -> MakeInput:
    """Inputs from any servable model: the zoo, ``noop`` and ``sleep``
    (``get_servable(name, variant).make_input(size, rng)``)."""
    from servelab.servers.models import get_servable

    cache: dict[str, Any] = {}

    def make(model: str, size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        if model not in cache:
            cache[model] = get_servable(model, variant)
        return cache[model].make_input(int(size), rng)  # type: ignore[no-any-return]

    return make


@dataclass(frozen=True)
class Target:
    """An OIP v2 endpoint: ``http://host:port[/prefix]``."""

    host: str
    port: int
    prefix: str = ""

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http":
            raise ValueError(f"target {url!r}: only http:// endpoints are supported")
        if not parts.hostname:
            raise ValueError(f"target {url!r}: no host")
        return cls(parts.hostname, parts.port or 80, parts.path.rstrip("/"))

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.prefix}"

    def infer_path(self, model: str) -> str:
        return f"{self.prefix}/v2/models/{model}/infer"


def http_request(target: Target, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """A complete HTTP/1.1 POST (keep-alive) as bytes."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {target.host}:{target.port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += [f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


@dataclass
class Payloads:
    """Prebuilt request bytes and, per scheduled request, which of them it sends."""

    requests: list[bytes]
    index: np.ndarray  # int32 per scheduled request, into ``requests``

    @classmethod
    def build(
        cls, schedule: Schedule, target: Target, make_input: MakeInput | None = None,
        binary: bool = False, seed: int = 0,
    ) -> Payloads:
        make = make_input if make_input is not None else zoo_make_input()
        rng = np.random.default_rng(seed)
        timeout = np.nan_to_num(np.round(schedule.timeout_ms(), 3), nan=-1.0)  # NaN = none
        keys: dict[tuple[int, int, int, float], int] = {}
        requests: list[bytes] = []
        index = np.empty(len(schedule), dtype=np.int32)
        for i, key in enumerate(
            zip(
                schedule.model_idx.tolist(), schedule.input_size.tolist(),
                schedule.priority.tolist(), timeout.tolist(), strict=True,
            )
        ):
            j = keys.get(key)
            if j is None:
                m, size, prio, tmo = key
                model = schedule.models[m]
                params: dict[str, Any] = {}
                if prio >= 0:
                    params["priority"] = int(prio)
                if tmo >= 0:
                    params["timeout_ms"] = float(tmo)
                body, headers = encode_request(make(model, size, rng), parameters=params, binary=binary)
                j = keys[key] = len(requests)
                requests.append(http_request(target, target.infer_path(model), body, headers))
            index[i] = j
        log.debug("built %d distinct request bodies for %d requests", len(requests), len(schedule))
        return cls(requests, index)
