"""Switch: how long a new backend takes to come up, per server setup (the meta-scheduler's
switching cost).

For each setup, ``samples`` times: launch ``servelab serve`` (``servers/launch.py``, the models
of ``params["models"]``, ``params["workers"]`` workers) and time, from the launch,

* ``ready_s`` — the server's "ready at" line (models built, workers started, port bound);
* ``first_s`` — the first answered inference request of each model, one after another (the
  time a gateway would wait before it shifts traffic onto the new backend);

and the CPU the start-up took (the server and all its worker processes, user + system, from
``/proc`` via psutil): ``cpu_s``.  ``cpu_s / (first_s × cores)`` is the share of the machine a
starting backend takes from the one still serving.  Not part of ``--quick`` (it starts a dozen
servers); the profile keeps the median per setup as ``frontend[setup].start_s``.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

SETUPS = ("threads", "processes", "async-thread", "async-process")


def _config(setup: str, models: list[str], workers: int) -> Any:
    from servelab.core.config import ServerConfig

    concurrency, _, offload = setup.partition("-")
    return ServerConfig(concurrency=concurrency, offload=offload or "thread", workers=workers,
                        models=tuple(models))


def _infer(host: str, port: int, model: str) -> None:
    from servelab.servers.oip import encode_request
    from servelab.servers.zoo import get_model

    rng = np.random.default_rng(0)
    inputs = get_model(model, variant="tiny").make_input(None, rng)  # the default size
    body, headers = encode_request(inputs)
    conn = http.client.HTTPConnection(host, port, timeout=120)
    try:
        conn.request("POST", f"/v2/models/{model}/infer", body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{model}: HTTP {resp.status} on the first request")
    finally:
        conn.close()


def _cpu(proc: Any) -> float:
    import psutil

    total = 0.0
    try:
        p = psutil.Process(proc.pid)
        for q in [p, *p.children(recursive=True)]:
            try:
                t = q.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return total


def launch_once(setup: str, models: list[str], workers: int, variant: str) -> dict[str, float]:
    """One launch: seconds to ready, to every model's first answer, and the CPU it took."""
    from servelab.servers.base import ServeOptions
    from servelab.servers.launch import ServerProcess

    srv = ServerProcess(_config(setup, models, workers), ServeOptions(port=0, variant=variant))
    t0 = time.perf_counter()
    with srv:
        ready = time.perf_counter() - t0
        host, port = srv.hostport
        for m in models:
            _infer(host, port, m)
        first = time.perf_counter() - t0
        cpu = _cpu(srv.proc)
    return {"ready_s": ready, "first_s": first, "cpu_s": cpu}


def measure(params: Mapping[str, Any], warmups: int, samples: int) -> dict[str, Any]:
    models = list(params.get("models", ["mobilenet_v2", "distilbert", "lstm_forecaster"]))
    workers = int(params.get("workers", 2))
    variant = str(params.get("variant", "full"))
    out: dict[str, Any] = {}
    for setup in params.get("setups", SETUPS):
        for _ in range(warmups):  # the first launch pays the page cache's cold reads
            launch_once(setup, models, workers, variant)
        runs = [launch_once(setup, models, workers, variant) for _ in range(max(samples, 1))]
        out[setup] = {k: [r[k] for r in runs] for k in ("ready_s", "first_s", "cpu_s")}
    return {"samples": [v for s in out.values() for v in s["first_s"]], "setups": out,
            "models": models, "workers": workers, "variant": variant}


def start_times(result: Mapping[str, Any]) -> dict[str, float]:
    """The median time to first answer per setup (what the profile keeps)."""
    return {s: float(np.median(v["first_s"])) for s, v in result.get("setups", {}).items()}


if __name__ == "__main__":  # a direct, one-off run: python -m servelab.calibrate.benches.switch
    import json
    import os
    import sys

    res = measure({"setups": sys.argv[1:] or SETUPS}, warmups=1, samples=1)
    cores = os.cpu_count() or 1
    for s, v in res["setups"].items():
        first, cpu = float(np.median(v["first_s"])), float(np.median(v["cpu_s"]))
        print(f"{s:<14} ready {np.median(v['ready_s']):.2f} s  first answer {first:.2f} s  "
              f"cpu {cpu:.2f} s  share of the machine {cpu / (first * cores):.0%}")
    print(json.dumps(res))
