"""The gateway's latency histogram and a backend's end-to-end one have the same buckets, so the
two compare bucket by bucket (a client-side vs server-side latency split per bucket)."""

from __future__ import annotations

import re

from servelab.gateway.metrics import GatewayMetrics
from servelab.servers.metrics import ServerMetrics


def _bounds(text: bytes, metric: str) -> list[str]:
    return re.findall(rf'^{metric}_bucket{{.*le="([^"]+)".*}} ', text.decode(), re.M)


def test_gateway_and_backend_latency_buckets_are_the_same():
    g, s = GatewayMetrics(), ServerMetrics()
    g.latency.labels(model="m").observe(0.003)
    s.e2e_time.labels(model="m").observe(0.003)
    gw = _bounds(g.exposition(), "servelab_gateway_latency_seconds")
    backend = _bounds(s.exposition(), "servelab_request_seconds")
    assert len(gw) == 16 and gw == backend  # 15 bounds and +Inf
