"""A naive FastAPI + torch server for MobileNetV2: the OIP v2 JSON infer endpoint written the
way a first version is — pydantic parses the body, a plain ``def`` endpoint runs in FastAPI's
thread pool, one forward pass per request (no batching, no admission control, torch's own
intra-op threads), uvicorn with one process.  ``servelab bench serve --peers`` measures it next
to servelab; ``python -m servelab.loadgen.peers.naive_fastapi --port 0`` prints ``... ready at
URL`` like ``servelab serve``."""

from __future__ import annotations

import socket
from typing import Any

from pydantic import BaseModel

from servelab.loadgen.peers.common import (
    MODEL,
    Predictor,
    announce_when_ready,
    answer,
    peer_arguments,
)


class InferInput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class InferBody(BaseModel):
    inputs: list[InferInput]
    id: str | None = None
    parameters: dict[str, Any] | None = None


def make_app(variant: str = "full", seed: int = 0) -> Any:
    """The FastAPI application (the model loaded once, at build)."""
    from fastapi import FastAPI, HTTPException, Response

    predictor = Predictor(variant, seed)
    app = FastAPI(title="naive FastAPI + torch MobileNetV2")

    @app.get("/v2/health/ready")
    def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.get("/v2/health/live")
    def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/models/{name}/ready")
    def model_ready(name: str) -> dict[str, Any]:
        if name != MODEL:
            raise HTTPException(404, f"unknown model {name!r}")
        return {"name": name, "ready": True}

    @app.post(f"/v2/models/{MODEL}/infer")
    def infer(body: InferBody) -> Response:
        try:
            inputs = predictor.decode([t.model_dump() for t in body.inputs])
        except (KeyError, ValueError) as exc:
            raise HTTPException(400, f"bad input: {exc}") from None
        content, headers = answer(predictor.infer([inputs])[0])
        return Response(content, headers=headers)

    return app


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    args = peer_arguments(__doc__ or "").parse_args(argv)
    app = make_app(args.variant, args.seed)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    host, port = sock.getsockname()[:2]
    announce_when_ready(f"http://{host}:{port}", "naive-fastapi")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
