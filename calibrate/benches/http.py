"""Each HTTP stack's per-request overhead: a live server with the no-op model, one keep-alive
connection, requests back to back (closed loop), at two payload sizes.

The stack is the server a concurrency model uses: ``threads`` and ``processes`` serve through
waitress + Flask, ``async`` through uvicorn + FastAPI; ``processes`` adds the hand-off to a
worker process.  A sample is one round trip of a small request; ``per_byte_s`` comes from the
difference between the small and the large payload, per byte of *tensor data* (FP32 values,
as the profile's model payload sizes count them — the JSON text is several times larger).  The client's own cost (stdlib
``http.client``, a few tens of µs) is included: the figure is an upper bound of the server's.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Mapping
from typing import Any

import numpy as np


def _round_trips(host: str, port: int, body: bytes, n: int) -> list[float]:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    headers = {"Content-Type": "application/json"}
    out = []
    try:
        for _ in range(n):
            t = time.perf_counter()
            conn.request("POST", "/v2/models/noop/infer", body, headers)
            resp = conn.getresponse()
            resp.read()
            out.append(time.perf_counter() - t)
            if resp.status != 200:
                raise RuntimeError(f"noop request failed with HTTP {resp.status}")
    finally:
        conn.close()
    return out


def measure(params: Mapping[str, Any], warmups: int, samples: int) -> dict[str, Any]:
    from servelab.core.config import ServerConfig
    from servelab.servers.base import ServeOptions
    from servelab.servers.launch import ServerProcess
    from servelab.servers.oip import encode_request

    stack = params.get("stack", "threads")
    small, large = int(params.get("small", 16)), int(params.get("large", 16384))
    rng = np.random.default_rng(0)
    bodies = {
        k: encode_request({"input": rng.random((1, k), dtype=np.float32)})[0]
        for k in (small, large)
    }
    config = ServerConfig(concurrency=stack, workers=1, models=("noop",), model_lock="none")
    with ServerProcess(config, ServeOptions(port=0)) as srv:
        host, port = srv.hostport
        _round_trips(host, port, bodies[small], max(warmups, 1))
        small_t = _round_trips(host, port, bodies[small], samples)
        large_t = _round_trips(host, port, bodies[large], max(samples // 4, 20))
    extra = (large - small) * 4  # FP32 tensor bytes
    per_byte = max(float(np.median(large_t) - np.median(small_t)), 0.0) / extra
    return {"samples": small_t, "large": large_t, "per_byte_s": per_byte, "available": True,
            "bytes": {"small": len(bodies[small]), "large": len(bodies[large])}}
