"""Prometheus metrics for one server, in its own registry (several servers can live in one
process, e.g. in tests).  Exposed at ``GET /metrics`` in the text exposition format."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
)
SMALL_BUCKETS = (1e-5, 5e-5, 1e-4, 2e-4, 5e-4, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class ServerMetrics:
    """Every metric a server exports (``servelab_`` prefix)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "servelab_requests", "Inference requests by model and final status "
            "(ok, rejected, timeout, error, bad_request, not_found, too_large)",
            ["model", "status"], registry=r,
        )
        self.queue_time = Histogram(
            "servelab_queue_seconds", "Time from admission to first service",
            ["model"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.compute_time = Histogram(
            "servelab_compute_seconds", "Preprocess + forward + postprocess time of the batch "
            "a request was served in", ["model"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.e2e_time = Histogram(
            "servelab_request_seconds", "End-to-end time in the server, body read to response",
            ["model"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.batch_size = Histogram(
            "servelab_batch_size", "Rows per executed batch", ["model"],
            buckets=BATCH_BUCKETS, registry=r,
        )
        self.queue_depth = Gauge("servelab_queue_depth", "Requests waiting in the queue", registry=r)
        self.inflight = Gauge(
            "servelab_inflight", "Requests admitted and not yet answered", registry=r
        )
        self.lock_wait = Histogram(
            "servelab_lock_wait_seconds", "Time an inference thread waited for the model lock",
            ["model"], buckets=SMALL_BUCKETS, registry=r,
        )
        self.ipc_time = Histogram(
            "servelab_ipc_seconds", "Per-batch time spent crossing to a worker process and back "
            "(round trip minus the worker's own compute)", buckets=SMALL_BUCKETS, registry=r,
        )
        self.worker_restarts = Counter(
            "servelab_worker_restarts", "Worker processes replaced after dying", registry=r
        )
        self.worker_deaths = Counter(
            "servelab_worker_deaths", "Worker processes that died holding a batch, by model",
            ["model"], registry=r,
        )
        self.retries = Counter(
            "servelab_retries", "Requests retried on a fresh worker after theirs died",
            ["model"], registry=r,
        )
        self.poison = Counter(
            "servelab_poison_requests", "Requests answered 500 because the worker died running "
            "them twice (the first run and its retry)", ["model"], registry=r,
        )
        self.preemptions = Counter(
            "servelab_preemptions", "Batches preempted at a stage boundary (MLFQ)", ["model"],
            registry=r,
        )
        self.watchdog_stuck = Counter(
            "servelab_watchdog_stuck_requests", "Requests the deadlock watchdog answered 500 "
            "because their inference thread was stuck on a lock (kind: deadlock, leaked)",
            ["kind"], registry=r,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
