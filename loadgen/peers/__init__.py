"""Other servers next to servelab, for ``servelab bench serve --peers``: the same OIP v2 JSON
infer endpoint for MobileNetV2 served the way other people serve it.

* :mod:`.naive_fastapi` — a naive FastAPI + torch server (uvicorn, one process, a request per
  forward pass in FastAPI's thread pool, pydantic-parsed JSON): what a first version looks like.
* :mod:`.ray_serve` — Ray Serve with ``@serve.batch`` (``pip install -e '.[ray]'``).
* :mod:`.common` — the model call and OIP answer both share (the zoo's own preprocessing,
  forward pass and postprocessing, so only the serving differs), and their start-up line.
* :mod:`.launch` — a peer as a subprocess, as :class:`servelab.servers.launch.ServerProcess`.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

PEERS: dict[str, str] = {
    "naive-fastapi": "servelab.loadgen.peers.naive_fastapi",
    "ray-serve": "servelab.loadgen.peers.ray_serve",
}
"""Peer name -> the module run as ``python -m MODULE --port 0 ...``."""
NEEDS = {"naive-fastapi": ("fastapi", "uvicorn"), "ray-serve": ("ray",)}
IMPORTS = {"ray-serve": "ray.serve"}
"""A module that must import too (``ray`` alone, without Serve's own dependencies such as
``grpcio``, imports but cannot serve); checked in a subprocess (importing Ray takes seconds)."""
INSTALL = {"naive-fastapi": "pip install -e .", "ray-serve": "pip install -e '.[ray]'"}


def missing(name: str) -> str | None:
    """Why peer ``name`` cannot run here (a package is not installed, and how to install it),
    or None."""
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}; valid: {', '.join(PEERS)}")
    absent = [m for m in NEEDS[name] if importlib.util.find_spec(m) is None]
    if absent:
        return f"{', '.join(absent)} not installed: {INSTALL[name]}"
    if name in IMPORTS:
        r = subprocess.run([sys.executable, "-c", f"import {IMPORTS[name]}"],
                           capture_output=True, text=True, timeout=120)
        if r.returncode:
            last = (r.stderr.strip().splitlines() or ["failed"])[-1]
            return f"{IMPORTS[name]} does not import ({last[:160]}): {INSTALL[name]}"
    return None
