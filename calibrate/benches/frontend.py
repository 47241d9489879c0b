"""The live front end: one real server of a setup, driven by the real load generator.

For one setup (``threads``, ``processes``, ``async-thread``, ``async-process``,
``async-inline``), with every model loaded and two workers:

1. **CPU per request**, per model (and LSTM lookback): servelab's open-loop generator sends a
   single-model Poisson stream at low load while the server's threads are read from
   ``/proc/<pid>/task/<tid>/schedstat`` (nanoseconds on CPU).  The front end's CPU is the
   server process's minus its inference threads' (their native ids come from
   ``/servelab/stats``); for a process pool it is the whole main process (dispatch and the
   server's side of IPC included).  The generator's own CPU per request is this
   process's while it sends (``RUSAGE_SELF`` from the first send on: bodies and connections are made before).
   The run's median latency minus the CPU a request costs on its path (generator, front end,
   inference — worker processes read the same way) is the path's hand-off latency: wake-ups
   and the loopback, time that takes no CPU.
2. **Convoy**: a probe client sends ``noop`` requests one at a time (20 ms apart) while a
   second client keeps one worker busy with one model, back to back; the probe's median
   latency minus its median on an idle server is the wait that model's inference adds to a
   front-end pass.  (Not with ``probe_seconds`` 0: async inline, whose inference runs on the
   loop's own thread, has no inference threads to read and no convoy to probe.)
"""

from __future__ import annotations

import http.client
import os
import resource
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

MODELS = ("mobilenet_v2", "distilbert", "lstm_forecaster")
WORKERS = 2
"""The measured servers' pool size."""
RUNS = (("mobilenet_v2", 32), ("distilbert", None), ("lstm_forecaster", 96),
        ("lstm_forecaster", 720))
"""(model, fixed input size or None for the workload default)."""


def _task_ns(pid: int) -> dict[int, int]:
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            out[int(tid)] = int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return out


def _spec(model: str, size: int | None, rate: float, seconds: float, seed: int) -> Any:
    from servelab.core.workload import ArrivalSpec, SizeDist, WorkloadSpec

    sizes = {model: SizeDist(kind="fixed", value=size)} if size is not None else {}
    return WorkloadSpec(
        name=f"frontend-{model}", duration=seconds, warmup_s=0.0, seed=seed,
        arrival=ArrivalSpec(kind="poisson", rate=rate), mix={model: 1.0}, sizes=sizes,
    )


def _rate(model: str, size: int | None) -> float:
    """A low load: about a quarter of one core of inference."""
    return {"mobilenet_v2": 40.0, "distilbert": 4.0}.get(
        model, 40.0 if (size or 96) <= 96 else 15.0)


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _workers_ns(pids: list[int]) -> int:
    total = 0
    for p in pids:
        try:
            total += sum(_task_ns(p).values())
        except OSError:
            continue
    return total


def _cpu_run(srv: Any, model: str, size: int | None, seconds: float, inference: set[int],
             pid: int, seed: int, workers: list[int]) -> dict[str, Any]:
    from servelab.loadgen.accounting import build_records, merge_results
    from servelab.loadgen.generator import SenderOptions
    from servelab.loadgen.payloads import Payloads, Target
    from servelab.loadgen.processes import run_senders
    from servelab.loadgen.schedule import Schedule

    spec = _spec(model, size, _rate(model, size), seconds, seed)
    schedule = Schedule.from_spec(spec)
    target = Target.parse(srv.url)
    payloads = Payloads.build(schedule, target, None, seed=spec.seed)  # before the clock
    before, w0 = _task_ns(pid), _workers_ns(workers)
    started: list[float] = []  # CPU once the connections are open: sending starts

    def on_start(_counters: Any, _t0: float) -> None:
        started.append(_self_cpu())

    results = run_senders(schedule, payloads, target, SenderOptions(timeout=30.0),
                          on_start=on_start)
    after, c1, w1 = _task_ns(pid), _self_cpu(), _workers_ns(workers)
    c0 = started[0] if started else c1
    fe_ns = sum(v - before.get(t, 0) for t, v in after.items() if t not in inference)
    inf_ns = sum(v - before.get(t, 0) for t, v in after.items() if t in inference) + w1 - w0
    rec = build_records(schedule, merge_results(results), 0.0, "")
    done = rec["status"] == "ok"
    ok = int(done.sum())
    return {"model": model, "size": float(rec.loc[done, "input_size"].mean()) if ok else 0.0,
            "requests": ok, "seconds": seconds, "frontend_s": fe_ns / 1e9 / max(ok, 1),
            "inference_s": inf_ns / 1e9 / max(ok, 1), "client_s": (c1 - c0) / max(ok, 1),
            "fixed_size": size is not None,
            "latency_p50_s": float(rec.loc[done, "latency"].median()) if ok else float("nan")}


def _busy(url: str, body: bytes, model: str, stop: threading.Event) -> None:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        while not stop.is_set():
            conn.request("POST", f"/v2/models/{model}/infer", body,
                         {"Content-Type": "application/json"})
            conn.getresponse().read()
    finally:
        conn.close()


def _probe(url: str, body: bytes, seconds: float) -> list[float]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    out = []
    end = time.perf_counter() + seconds
    try:
        while time.perf_counter() < end:
            time.sleep(0.02)
            t = time.perf_counter()
            conn.request("POST", "/v2/models/noop/infer", body,
                         {"Content-Type": "application/json"})
            conn.getresponse().read()
            out.append(time.perf_counter() - t)
    finally:
        conn.close()
    return out


def _bodies(variant: str) -> dict[str, bytes]:
    from servelab.servers.oip import encode_request
    from servelab.servers.zoo import get_model

    rng = np.random.default_rng(0)
    out = {"noop": encode_request({"input": rng.random((1, 16), dtype=np.float32)})[0]}
    for m in MODELS:
        model = get_model(m, variant=variant)
        out[m] = encode_request(model.make_input(None, rng))[0]
    return out


def measure(params: Mapping[str, Any], warmups: int, samples: int) -> dict[str, Any]:
    from servelab.core.config import ServerConfig
    from servelab.servers.base import ServeOptions
    from servelab.servers.launch import ServerProcess

    setup = params.get("setup", "threads")
    conc, _, offload = setup.partition("-")
    variant = params.get("variant", "full")
    seconds = float(params.get("seconds", 2.0))
    probe_s = float(params.get("probe_seconds", 1.5))
    models = tuple(params.get("models", MODELS))
    config = ServerConfig(concurrency=conc, offload=offload or "thread", workers=WORKERS,
                          models=(*models, "noop"), queue_capacity=1024)
    bodies = _bodies(variant)
    runs, convoy = [], {}
    with ServerProcess(config, ServeOptions(port=0, variant=variant)) as srv:
        pid = srv.proc.pid
        stats = srv.get("/servelab/stats")
        inference = {int(w["native_id"]) for w in stats.get("workers", []) if w.get("native_id")}
        workers = [int(w["pid"]) for w in stats.get("workers", []) if w.get("pid")]
        for model, size in RUNS:  # warm every path once
            if model in models:
                _cpu_run(srv, model, size, 0.5, inference, pid, 1, workers)
        for model, size in RUNS:
            if model in models:
                runs.append(_cpu_run(srv, model, size, seconds, inference, pid, 2, workers))
        idle = _probe(srv.url, bodies["noop"], probe_s) if probe_s > 0 else []
        probes = {"idle": idle}
        for m in models if probe_s > 0 else ():
            stop = threading.Event()
            t = threading.Thread(target=_busy, args=(srv.url, bodies[m], m, stop), daemon=True)
            t.start()
            time.sleep(0.2)
            probes[m] = _probe(srv.url, bodies["noop"], probe_s)
            stop.set()
            t.join(timeout=60)
            convoy[m] = float(np.median(probes[m]) - np.median(idle))
    return {"samples": [r["frontend_s"] for r in runs], "setup": setup, "runs": runs,
            "probe_idle_s": float(np.median(idle)) if idle else 0.0, "probe_delta_s": convoy,
            "probes": {k: [float(x) for x in v] for k, v in probes.items()},
            "inference_threads": len(inference)}
