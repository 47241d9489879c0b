"""Ray Serve serving MobileNetV2 on the OIP v2 JSON infer endpoint, with dynamic batching
(``@serve.batch``) over ``--replicas`` replicas: the way Ray's documentation serves a model.
Needs the ``ray`` extra (``pip install -e '.[ray]'``).  ``python -m
servelab.loadgen.peers.ray_serve --port 0`` prints ``... ready at URL`` like ``servelab
serve`` and serves until SIGTERM."""

import os
import signal
import threading
from typing import Any

# No ``from __future__ import annotations`` here: Ray pickles the routes, and FastAPI must see
# ``request: Request`` as the class itself, not a string it cannot resolve in the replica
# (it would take it for a query parameter: every infer a 422).
from fastapi import FastAPI, HTTPException, Request, Response

from servelab.loadgen.peers.common import (
    MODEL,
    Predictor,
    announce_when_ready,
    answer,
    free_port,
    peer_arguments,
)


def build(args: Any) -> Any:
    """The Serve application: a FastAPI ingress whose infer route awaits a batched call."""
    import numpy as np
    from ray import serve

    app = FastAPI()

    @serve.deployment(num_replicas=args.replicas,
                      ray_actor_options={"num_cpus": args.replica_cpus},
                      max_ongoing_requests=max(8, 4 * args.max_batch))
    @serve.ingress(app)
    class MobileNet:
        def __init__(self) -> None:
            self.predictor = Predictor(args.variant, args.seed, threads=args.intra_op_threads)

        @serve.batch(max_batch_size=args.max_batch,
                     batch_wait_timeout_s=args.batch_timeout_ms / 1000)
        async def run(self, requests: list[dict[str, np.ndarray]]) -> list[dict[str, Any]]:
            return self.predictor.infer(requests)

        @app.get("/v2/health/ready")
        async def ready(self) -> dict[str, bool]:
            return {"ready": True}

        @app.get("/v2/models/{name}/ready")
        async def model_ready(self, name: str) -> dict[str, Any]:
            if name != MODEL:
                raise HTTPException(404, f"unknown model {name!r}")
            return {"name": name, "ready": True}

        @app.post(f"/v2/models/{MODEL}/infer")
        async def infer(self, request: Request) -> Response:
            body = await request.json()
            try:
                inputs = self.predictor.decode(body["inputs"])
            except (KeyError, ValueError, TypeError) as exc:
                raise HTTPException(400, f"bad input: {exc}") from None
            content, headers = answer(await self.run(inputs))
            return Response(content, headers=headers)

    deployment: Any = MobileNet  # a Deployment once decorated
    return deployment.bind()


def main(argv: list[str] | None = None) -> int:
    import ray
    from ray import serve

    parser = peer_arguments(__doc__ or "")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--replica-cpus", type=float, default=1.0)
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--batch-timeout-ms", type=float, default=5.0)
    parser.add_argument("--intra-op-threads", type=int, default=1)
    args = parser.parse_args(argv)
    port = args.port or free_port(args.host)
    ready_line = os.fdopen(os.dup(1), "w")  # Ray's own output goes to stderr: stdout carries
    os.dup2(2, 1)  # one line, "... ready at URL" (the launcher reads it)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    ray.init(include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": args.host, "port": port})
        announce_when_ready(f"http://{args.host}:{port}", "ray-serve", stream=ready_line)
        serve.run(build(args), route_prefix="/")
        stop.wait()
    finally:
        serve.shutdown()
        ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
