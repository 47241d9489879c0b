"""What the peers share: MobileNetV2 from the zoo (its own preprocessing, forward pass and
postprocessing, so the model's work is the same as servelab's and only the serving differs),
the OIP v2 answer, and the start-up contract of ``servelab serve`` (one stdout line ``... ready
at URL`` once the health endpoint answers)."""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from typing import Any, TextIO

import numpy as np

MODEL = "mobilenet_v2"
READY_PATH = "/v2/health/ready"


class Predictor:
    """The zoo's MobileNetV2, loaded once; :meth:`infer` runs a list of requests' inputs as one
    batch and returns each request's outputs."""

    def __init__(self, variant: str = "full", seed: int = 0, threads: int = 0):
        import torch

        from servelab.servers.models import get_servable

        if threads > 0:
            torch.set_num_threads(threads)
        self.model = get_servable(MODEL, variant, seed=seed)
        self.model.load()
        self.specs = {s.name: s for s in self.model.inputs}

    def decode(self, inputs: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
        """OIP v2 JSON input tensors -> named arrays (KeyError/ValueError on a bad one)."""
        out = {}
        for t in inputs:
            spec = self.specs[t["name"]]
            out[t["name"]] = np.asarray(t["data"], dtype=spec.numpy_dtype).reshape(t["shape"])
        return out

    def infer(self, requests: Sequence[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        import torch

        with torch.inference_mode():
            batch = self.model.preprocess(list(requests))
            return list(self.model.postprocess(self.model.forward_unstaged(batch),
                                               len(requests)))


def answer(outputs: dict[str, np.ndarray]) -> tuple[bytes, dict[str, str]]:
    """The OIP v2 JSON response body and headers."""
    from servelab.servers.oip import encode_response

    return encode_response(MODEL, outputs)


def peer_arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port")
    parser.add_argument("--variant", default="full", choices=["full", "tiny"])
    parser.add_argument("--seed", type=int, default=0)
    return parser


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def announce_when_ready(url: str, what: str, timeout: float = 300.0,
                        stream: TextIO | None = None) -> threading.Thread:
    """Print ``<what> ready at <url>`` on stdout once ``GET url/v2/health/ready`` answers 200
    (from a thread, while the server starts in the main one)."""

    def poll() -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                with urllib.request.urlopen(url + READY_PATH, timeout=2) as r:  # noqa: S310
                    if r.status == 200:
                        print(f"{what} ready at {url}", file=stream or sys.stdout,
                              flush=True)
                        return
            except OSError:
                pass
            time.sleep(0.1)
        print(f"{what} did not get ready in {timeout:g} s", file=sys.stderr, flush=True)

    t = threading.Thread(target=poll, name="announce", daemon=True)
    t.start()
    return t
