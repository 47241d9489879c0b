"""The gateway's Prometheus metrics (its own registry), answered at ``GET /metrics``."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# The backends' buckets, so that the gateway's latency histogram and theirs compare bucket by
# bucket.
from servelab.servers.metrics import LATENCY_BUCKETS


class GatewayMetrics:
    """Requests and latency as the client sees them at the gateway, retries, switches and the
    last window's figures."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("servelab_gateway_requests", "requests answered, by model and "
                                "HTTP status", ["model", "status"], registry=r)
        self.latency = Histogram("servelab_gateway_latency_seconds", "request received -> "
                                 "response written, at the gateway", ["model"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.retries = Counter("servelab_gateway_retries", "requests retried on another "
                               "backend after a connection failure or a draining refusal",
                               registry=r)
        self.read_timeouts = Counter("servelab_gateway_read_timeouts", "client requests not "
                                     "received within the read timeout (answered 408)",
                                     registry=r)
        self.switches = Counter("servelab_gateway_switches", "configuration switches, by kind "
                                "(inplace, warm, new, failed)", ["kind"], registry=r)
        self.switch_seconds = Histogram("servelab_gateway_switch_seconds", "decision -> "
                                        "traffic on the new arm", ["kind"], registry=r,
                                        buckets=(0.001, 0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60))
        self.arm = Gauge("servelab_gateway_arm", "index of the arm serving now", registry=r)
        self.window = Gauge("servelab_gateway_window", "last decision window's figures",
                            ["figure"], registry=r)
        self.warm = Gauge("servelab_gateway_warm_backends", "backends started and ready",
                          registry=r)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
