"""A Locust file driven by the same workloads — **closed loop**, for people who prefer Locust.

    pip install 'servelab[locust]'
    SERVELAB_WORKLOAD=mixed locust -f loadgen/locustfile.py --host http://127.0.0.1:8000 \\
        --users 20 --spawn-rate 20 --run-time 60s --headless

Each simulated user picks a model from the workload's mix, an input size from that model's
size distribution, and POSTs the OIP v2 request (the same prebuilt bodies, priorities and
``timeout_ms`` as ``servelab load``).  Users wait ``users / rate`` seconds on average
(exponential think time, ``SERVELAB_RATE`` or the workload's mean rate) between requests.

This is a closed-loop measurement: a user waits for its response before it sends again, so
when the server slows down the offered load drops with it, and Locust times each request from
its actual (late) send.  Stalls and queueing are under-reported (coordinated omission).  Use
``servelab load`` (open loop, latency from the intended send time) for the study's figures.

Locust is imported lazily: the helpers here work without it, and the user class only exists
when Locust is installed.
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

from servelab.core.workload import WorkloadSpec


@lru_cache(maxsize=1)
def workload() -> WorkloadSpec:
    """The workload named by ``SERVELAB_WORKLOAD`` (default ``mixed``), rate from
    ``SERVELAB_RATE`` if set."""
    from servelab.loadgen.schedule import prepare_spec
    from servelab.workloads import load_workload

    rate = os.environ.get("SERVELAB_RATE")
    spec = load_workload(os.environ.get("SERVELAB_WORKLOAD", "mixed"))
    return prepare_spec(spec, rate=float(rate) if rate else None)


class RequestPool:
    """Requests sampled from a workload: (model, path, body, headers), prebuilt and reused."""

    def __init__(self, spec: WorkloadSpec, n: int = 512, binary: bool = False) -> None:
        from servelab.loadgen.payloads import Payloads, Target
        from servelab.loadgen.schedule import Schedule

        schedule = Schedule.from_spec(spec)
        if len(schedule) == 0:
            raise ValueError(f"workload {spec.name!r} generates no requests")
        pick = np.linspace(0, len(schedule) - 1, min(n, len(schedule))).astype(int)
        schedule = schedule.take(pick)
        payloads = Payloads.build(schedule, Target("locust", 80), binary=binary, seed=spec.seed)
        self.items = []
        for i, j in enumerate(payloads.index.tolist()):
            head, _, body = payloads.requests[j].partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            headers = dict(
                line.split(": ", 1) for line in lines[1:]
                if not line.lower().startswith(("host:", "content-length:"))
            )
            self.items.append((str(schedule.model_names()[i]), path, body, headers))
        self.rng = np.random.default_rng(spec.seed)

    def sample(self) -> tuple[str, str, bytes, dict[str, str]]:
        return self.items[int(self.rng.integers(len(self.items)))]


try:  # Locust is optional: ``pip install 'servelab[locust]'``
    from locust import HttpUser, events, task
except ImportError:  # pragma: no cover - depends on the environment
    HttpUser = None

if HttpUser is not None:

    class OipUser(HttpUser):  # type: ignore[misc, valid-type]
        """One closed-loop client: request, wait for the answer, think, repeat."""

        pool: RequestPool | None = None

        def on_start(self) -> None:
            self.rng = np.random.default_rng()

        def wait_time(self) -> float:
            users = max(1, getattr(self.environment.runner, "user_count", 1) or 1)
            return float(self.rng.exponential(users / workload().mean_rate()))

        @task
        def infer(self) -> None:
            assert OipUser.pool is not None
            model, path, body, headers = OipUser.pool.sample()
            with self.client.post(path, data=body, headers=headers, name=model,
                                  catch_response=True) as resp:
                if resp.status_code == 503:
                    resp.failure("rejected (503)")
                elif resp.status_code == 504:
                    resp.failure("timeout (504)")

    @events.init.add_listener
    def _build_pool(environment: object, **_kw: object) -> None:
        """Build the request pool before any user starts (it imports the model zoo)."""
        OipUser.pool = RequestPool(workload(), binary=bool(os.environ.get("SERVELAB_BINARY")))
