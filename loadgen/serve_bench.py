"""The benchmark behind ``servelab bench serve``: throughput and latency of the live servers on this machine.

For every server x model x pool size (x batching setting) it starts ``servelab serve`` as a
subprocess (``--port 0``), measures a closed-loop single-request latency, then finds the
**maximum sustainable throughput** with an open-loop Poisson ladder: the offered rate grows by
``--growth`` while a step is sustainable (<= 1 % errors, answers keeping pace with the requests
sent, p99 within the model's SLO; a failed step is repeated once before it counts, since the
machine may be shared), then bisects twice between the last good and the first bad rate.  p50/p99 are
reported at that rate.  Each HTTP stack's per-request overhead is measured with the ``noop``
model: closed-loop latency on one connection, and its own maximum throughput.  For process
pools the per-worker USS/PSS is read from the server after the run.

The client (:mod:`servelab.servers.bench_client`) runs in this process and shares the CPU with
the server: on a 2-core machine that is part of what is measured (its CPU seconds are
recorded per step).  Results: ``results/bench-serve-<stamp>/`` with ``steps.parquet`` (one row
per load step), ``requests.parquet`` (client-side per-request records in the shared schema) and
``summary.json``.  A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from servelab.core.config import ServerConfig
from servelab.reproduce import run_metadata
from servelab.servers import launch
from servelab.servers.base import SETUPS, ServeOptions
from servelab.servers.bench_client import Client, LoadResult

log = logging.getLogger(__name__)

DEFAULT_SLO_MS = {"distilbert": 2000.0}
SLO_MS = 100.0


# -- one server subprocess ---------------------------------------------------------------------
class ServerProcess(launch.ServerProcess):
    """A benchmarked server: the configuration a bench step names, launched as a subprocess."""

    def __init__(self, label: str, model: str, workers: int, max_batch: int, timeout_ms: float,
                 args: argparse.Namespace, logdir: Path):
        self.label = label
        config = ServerConfig(
            **SETUPS[label], workers=workers, models=(model,), max_batch=max_batch,
            batch_timeout_ms=timeout_ms, scheduler=args.scheduler,
            intra_op_threads=args.intra_op_threads, model_lock=args.model_lock,
            queue_capacity=1024,
        )
        options = ServeOptions(port=0, variant=args.variant, drain_timeout_s=5, seed=args.seed)
        log = logdir / f"{label}-{model}-w{workers}-b{max_batch}.log"
        super().__init__(config, options, log=log)

    def wait_idle(self, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            s = self.get("/servelab/stats")
            if s["inflight"] == 0:
                return
            time.sleep(0.2)


# -- payloads ------------------------------------------------------------------------------------
def payloads(model_name: str, variant: str, host: str, port: int, binary: bool,
             n: int = 64, seed: int = 0) -> tuple[list[bytes], int]:
    """Pre-encoded HTTP requests for ``model_name`` (its default input size) and that size."""
    from servelab.servers.bench_client import build_request
    from servelab.servers.models import get_servable
    from servelab.servers.oip import encode_request

    model = get_servable(model_name, variant=variant)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = model.make_input(None, rng)
        body, headers = encode_request(x, binary=binary)
        out.append(build_request(host, port, f"/v2/models/{model_name}/infer", body, headers))
    return out, model.default_size


# -- the measurements ----------------------------------------------------------------------------
def _slo(model: str, args: argparse.Namespace) -> float:
    table = dict(DEFAULT_SLO_MS)
    for item in args.slo_ms:
        k, _, v = item.partition("=")
        table[k] = float(v)
    return table.get(model, SLO_MS)


def _sustainable(s: dict[str, Any], slo_ms: float) -> bool:
    """At most 1 % errors, p99 within the SLO, and the answers kept pace with what was actually
    sent (Poisson counts vary, so compare with the sent rate, not the nominal one)."""
    return (s["error_rate"] <= 0.01 and s["p99_ms"] <= slo_ms
            and s["achieved_rps"] >= 0.9 * s["sent_rps"])


async def ladder(server: ServerProcess, client: Client, reqs: list[bytes], workers: int,
                 slo_ms: float, args: argparse.Namespace, on_step: Any) -> dict[str, Any]:
    lat = await client.closed_loop(reqs, 12)
    single = float(np.median(lat[2:]))
    rate = max(1.0, 0.5 * workers / single)
    await client.open_loop(reqs, rate, args.warmup_s, seed=args.seed + 99_999)  # warm-up, discarded
    await asyncio.to_thread(server.wait_idle)
    good: dict[str, Any] | None = None
    bad_rate: float | None = None
    steps = bisections = 0
    retried = -1.0
    while steps < args.max_steps:
        duration = max(args.step_s, args.min_requests / rate)
        res = await client.open_loop(reqs, rate, duration, seed=args.seed + steps)
        s = res.summary()
        s["sustainable"] = ok = _sustainable(s, slo_ms)
        s["loadavg_1m"] = os.getloadavg()[0]
        on_step(res, s)
        steps += 1
        log.info("  %s: %.1f req/s offered -> %.1f achieved, p50 %.1f ms, p99 %.1f ms %s",
                 server.label, rate, s["achieved_rps"], s["p50_ms"], s["p99_ms"],
                 "ok" if ok else "NOT sustainable")
        await asyncio.to_thread(server.wait_idle)
        if ok and (good is None or rate > good["offered_rps"]):
            good = s
        if not ok and retried != rate and steps < args.max_steps:
            retried = rate  # one bad step on a shared machine may be a hiccup: confirm it
            continue
        if not ok:
            bad_rate = rate if bad_rate is None else min(bad_rate, rate)
        if bad_rate is None:
            rate *= args.growth
            continue
        if bisections >= 2:
            break
        lo = good["offered_rps"] if good is not None else bad_rate / 2
        if bad_rate / lo < 1.06:
            break
        rate = math.sqrt(lo * bad_rate)
        bisections += 1
    return {"single_request_ms": single * 1000, "best": good, "first_unsustainable_rps": bad_rate,
            "steps": steps}


async def run_ladder(server: ServerProcess, reqs: list[bytes], workers: int, slo_ms: float,
                     args: argparse.Namespace, on_step: Any) -> dict[str, Any]:
    client = Client(*server.hostport)
    try:
        return await ladder(server, client, reqs, workers, slo_ms, args, on_step)
    finally:
        await client.close()


async def measure_overhead(server: ServerProcess, args: argparse.Namespace,
                           on_step: Any) -> dict[str, Any]:
    host, port = server.hostport
    reqs, _ = payloads("noop", args.variant, host, port, args.binary, seed=args.seed)
    client = Client(host, port)
    try:
        await client.closed_loop(reqs, 50)  # warm-up
        lat = await client.closed_loop(reqs, args.overhead_requests)
        out = {"closed_loop_p50_ms": float(np.percentile(lat, 50) * 1000),
               "closed_loop_mean_ms": float(lat.mean() * 1000),
               "closed_loop_p99_ms": float(np.percentile(lat, 99) * 1000)}
        out.update(await ladder(server, client, reqs, 1, SLO_MS, args, on_step))
        return out
    finally:
        await client.close()


def _records(res: LoadResult, meta: dict[str, Any], size: int) -> list[dict[str, Any]]:
    status = {200: "ok", 503: "rejected", 504: "timeout"}
    return [{
        "request_id": r.index, "model": meta["model"], "input_size": size, "priority": -1,
        "intended_arrival": r.intended, "enqueue": r.sent, "start": math.nan, "end": r.end,
        "status": status.get(r.status, "error"), "worker": -1, "batch_size": 0,
        "queue_len_at_arrival": -1, "config_id": meta["config"], "http_status": r.status,
        "offered_rps": res.rate, "step": meta["step"],
    } for r in res.requests]


def bench(args: argparse.Namespace, command: str) -> tuple[dict[str, Any], Path]:
    """Run the benchmark ``args`` (the flags of ``servelab bench serve``) asks for; returns the
    summary (also in ``summary.json``) and the run folder."""
    import pandas as pd

    from servelab.results import (
        RESULTS_ROOT,
        new_run_dir,
        records_frame,
        write_json,
        write_parquet,
    )

    root = Path(args.out) if args.out else RESULTS_ROOT
    out = new_run_dir("bench-serve", root)
    logdir = out / "logs"
    logdir.mkdir()
    steps: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    summary: dict[str, Any] = {
        "version": 1, **run_metadata(command, import_torch=True),
        "throughput": [], "overhead": [], "memory": []}
    batching = []
    for item in args.batching:
        b, _, t = item.partition(":")
        batching.append((int(b), float(t or 0)))

    def saver(meta: dict[str, Any], size: int) -> Any:
        def on_step(res: LoadResult, s: dict[str, Any]) -> None:
            meta["step"] = len([x for x in steps if x["config"] == meta["config"]])
            steps.append({**meta, **{k: v for k, v in s.items() if k != "statuses"},
                          "statuses": json.dumps(s["statuses"])})
            records.extend(_records(res, meta, size))
        return on_step

    def flush() -> None:
        if steps:
            write_parquet(out / "steps.parquet", pd.DataFrame(steps))
        if records:
            write_parquet(out / "requests.parquet", records_frame(records))
        write_json(out / "summary.json", summary)

    if args.memory_only:
        for label in [s for s in args.servers if "process" in s]:
            for model in args.models:
                for w in args.pool_sizes:
                    with ServerProcess(label, model, w, 1, 0, args, logdir) as srv:
                        st = srv.get("/servelab/stats")
                        summary["memory"].append(_memory_row(label, model, w, st, args))
        flush()
        return summary, out

    if args.overhead:
        for label in args.servers:
            meta = {"kind": "overhead", "server": label, "model": "noop", "workers": 1,
                    "max_batch": 1, "config": f"{label}-noop"}
            log.info("overhead: %s", label)
            with ServerProcess(label, "noop", 1, 1, 0, args, logdir) as srv:
                r = asyncio.run(measure_overhead(srv, args, saver(meta, 16)))
            summary["overhead"].append({"server": label, **r})
            flush()

    for model in args.models:
        slo = _slo(model, args)
        for label in args.servers:
            for w in args.pool_sizes:
                for b, t in batching:
                    config = f"{label}-{model}-w{w}-b{b}-t{t:g}"
                    meta = {"kind": "throughput", "server": label, "model": model, "workers": w,
                            "max_batch": b, "batch_timeout_ms": t, "config": config}
                    log.info("throughput: %s", config)
                    try:
                        with ServerProcess(label, model, w, b, t, args, logdir) as srv:
                            host, port = srv.hostport
                            reqs, size = payloads(model, args.variant, host, port, args.binary,
                                                  seed=args.seed)
                            r = asyncio.run(
                                run_ladder(srv, reqs, w, slo, args, saver(meta, size))
                            )
                            st = srv.get("/servelab/stats")
                    except RuntimeError as exc:
                        log.error("%s: %s", config, exc)
                        continue
                    best = r.get("best") or {}
                    summary["throughput"].append({
                        "config": config, "server": label, "model": model, "workers": w,
                        "max_batch": b, "batch_timeout_ms": t, "slo_ms": slo,
                        "single_request_ms": r["single_request_ms"],
                        "max_sustainable_rps": best.get("achieved_rps", 0.0),
                        "offered_rps": best.get("offered_rps", 0.0),
                        "p50_ms": best.get("p50_ms"), "p99_ms": best.get("p99_ms"),
                        "first_unsustainable_rps": r["first_unsustainable_rps"],
                    })
                    if "process" in label:
                        summary["memory"].append(_memory_row(label, model, w, st, args))
                    flush()
    flush()
    return summary, out


def _memory_row(label: str, model: str, w: int, st: dict[str, Any],
                args: argparse.Namespace) -> dict[str, Any]:
    mb = 2**20
    workers = st.get("workers", [])
    z = st.get("zygote", {})
    return {"server": label, "model": model, "variant": args.variant, "workers": w,
            "zygote_uss_mb": z.get("uss", 0) / mb, "zygote_pss_mb": z.get("pss", 0) / mb,
            "worker_uss_mb": [x.get("uss", 0) / mb for x in workers],
            "worker_pss_mb": [x.get("pss", 0) / mb for x in workers],
            "worker_rss_mb": [x.get("rss", 0) / mb for x in workers]}
