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

The ladder is :func:`servelab.loadgen.ladder.climb` with this benchmark's stop rules
(:func:`stop_rules`); the load is the load generator's own open-loop sender
(:func:`servelab.loadgen.runner.run_load`, one Poisson step at a time) and its closed-loop
driver for the single-request latencies.  It runs in this process and shares the CPU with the
server: on a 2-core machine that is part of what is measured (its CPU seconds are recorded
per step).  Results: ``results/bench-serve-<stamp>/`` with ``steps.parquet`` (one row
per load step), ``requests.parquet`` (client-side per-request records in the shared schema) and
``summary.json``.  A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from servelab.core.config import ServerConfig
from servelab.core.workload import WorkloadSpec
from servelab.loadgen.ladder import (
    Step,
    StopRule,
    climb,
    failing,
    generator_behind,
    saturated,
    slow,
)
from servelab.loadgen.payloads import MakeInput, servable_make_input
from servelab.reproduce import run_metadata
from servelab.servers import launch
from servelab.servers.base import SETUPS, ServeOptions
from servelab.summary import Distribution

log = logging.getLogger(__name__)

DEFAULT_SLO_MS = {"distilbert": 2000.0}
SLO_MS = 100.0
CLIENT_TIMEOUT_S = 60.0
NOOP_SIZE = 16
"""The noop model's input size in the overhead runs."""
SUMMARY_VERSION = 2
"""``summary.json``'s and ``steps.parquet``'s format: 2 has every latency in seconds (``*_s``;
version 1 had ``*_ms``).  ``slo_ms`` and ``batch_timeout_ms`` echo the flags, in ms."""


@functools.cache
def _inputs() -> MakeInput:
    """Request inputs for every servable model (input schemas do not depend on the variant, so
    the tiny models serve any server), built once per process."""
    return servable_make_input("tiny")


def default_size(model: str) -> int:
    """The input size a model is benchmarked at (its zoo default)."""
    from servelab.servers.models import get_servable

    return int(get_servable(model, "tiny").default_size)


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


# -- one load step, one closed loop (loadgen's senders) -----------------------------------------
def open_loop_step(
    url: str, model: str, size: int, rate: float, duration: float, seed: int,
    args: argparse.Namespace, config_id: str = "",
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Poisson arrivals of ``model`` at ``size`` for ``duration`` s, sent open loop by the load
    generator from this process: its records and this step's summary (``step_summary``)."""
    import psutil

    from servelab.loadgen.generator import SenderOptions
    from servelab.loadgen.runner import LoadConfig, run_load

    spec = WorkloadSpec.from_dict({
        "name": f"{model}-poisson", "duration": duration,
        "arrival": {"kind": "poisson", "rate": rate}, "mix": {model: 1.0},
        "sizes": {model: {"kind": "fixed", "value": int(size)}}, "seed": seed})
    cfg = LoadConfig(target=url, binary=args.binary, config_id=config_id, warmup=0.0,
                     progress=False, check_models=False)
    me = psutil.Process()
    cpu0 = sum(me.cpu_times()[:2])
    run = run_load(cfg, SenderOptions(timeout=CLIENT_TIMEOUT_S), spec=spec,
                   make_input=_inputs(), write=False)
    cpu = sum(me.cpu_times()[:2]) - cpu0
    return run.records, step_summary(run.records, rate, duration, cpu)


def step_summary(rec: pd.DataFrame, rate: float, duration: float,
                 client_cpu_s: float = 0.0) -> dict[str, Any]:
    """One load step as the benchmark reports it: rates per second, latencies (completion −
    intended send, ``ok`` answers) and the largest send lag in seconds, answers counted by
    HTTP status (else by record status: ``error``, ``timeout``, ``not_sent``)."""
    n = len(rec)
    ok = rec[rec["status"] == "ok"]
    sent = rec["enqueue"].notna() & rec["status"].ne("not_sent")
    lat = ok["latency"].to_numpy(dtype=float)
    span = max(float(ok["end"].max()) if len(ok) else 0.0, duration)
    keys = [str(h) if h else st for h, st in zip(rec["http_status"].tolist(),
                                                 rec["status"].tolist(), strict=True)]
    statuses = {k: keys.count(k) for k in sorted(set(keys))}
    lag = rec.loc[sent, "send_lag"].to_numpy(dtype=float)
    d = Distribution.of(lat)

    return {
        "offered_rps": rate, "sent": int(sent.sum()), "sent_rps": int(sent.sum()) / duration,
        "ok": len(ok), "achieved_rps": len(ok) / span if len(ok) else 0.0,
        "error_rate": 1 - len(ok) / n if n else 0.0,
        "not_sent_rate": float((rec["status"] == "not_sent").mean()) if n else 0.0,
        "p50_s": d.p50, "p90_s": d.p90, "p99_s": d.p99, "mean_s": d.mean,
        "max_send_lag_s": float(lag.max()) if len(lag) else 0.0,
        "statuses": statuses, "client_cpu_s": client_cpu_s,
    }


def one_at_a_time(url: str, model: str, size: int, n: int, args: argparse.Namespace) -> np.ndarray:
    """``n`` requests one after another on one connection (closed loop): seconds each, from
    the actual send; raises unless every answer is a 200."""
    from servelab.loadgen.closedloop import naive_latency, run_closed_loop
    from servelab.loadgen.generator import OK
    from servelab.loadgen.payloads import Payloads, Target
    from servelab.loadgen.schedule import Schedule

    target = Target.parse(url)
    schedule = Schedule(
        request_id=np.arange(n, dtype=np.int64), times=np.zeros(n),
        model_idx=np.zeros(n, dtype=np.int16), models=(model,),
        input_size=np.full(n, size, dtype=np.int64), priority=np.full(n, -1, dtype=np.int64),
        deadline=np.full(n, math.nan), phase=np.zeros(n, dtype=np.int16), duration=0.0)
    payloads = Payloads.build(schedule, target, _inputs(),
                              binary=args.binary, seed=args.seed)
    res = asyncio.run(run_closed_loop(schedule, payloads, target, users=1,
                                      timeout=CLIENT_TIMEOUT_S))
    if not np.all(res.status == OK):
        bad = int(np.argmax(res.status != OK))
        raise RuntimeError(f"closed-loop request failed: HTTP {int(res.http_status[bad])} "
                           f"{res.errors.get(bad, '')}".rstrip())
    return naive_latency(res)


# -- the measurements ----------------------------------------------------------------------------
def _slo(model: str, args: argparse.Namespace) -> float:
    table = dict(DEFAULT_SLO_MS)
    for item in args.slo_ms:
        k, _, v = item.partition("=")
        table[k] = float(v)
    return table.get(model, SLO_MS)


def stop_rules(slo_ms: float) -> tuple[StopRule, ...]:
    """A step is sustainable when the generator sent its schedule, at most 1 % of the requests
    failed, the p99 is within the SLO, and the answers kept pace with what was actually sent
    (Poisson counts vary, so the sent rate, not the nominal one)."""
    return (generator_behind(0.01), failing(0.01), slow(slo_ms / 1000), saturated(0.9))


def ladder(server: ServerProcess, model: str, size: int, workers: int, slo_ms: float,
           args: argparse.Namespace, on_step: Any) -> dict[str, Any]:
    """Single-request latency, a discarded warm-up, then the capacity ladder
    (:func:`servelab.loadgen.ladder.climb`: x ``--growth`` while sustainable, a failed step
    measured once more before it counts, then two bisections)."""
    url = server.url
    lat = one_at_a_time(url, model, size, 12, args)
    single = float(np.median(lat[2:]))
    rate = max(1.0, 0.5 * workers / single)
    open_loop_step(url, model, size, rate, args.warmup_s, args.seed + 99_999, args)  # warm-up
    server.wait_idle()
    rules = stop_rules(slo_ms)
    done = 0

    def measure(rate: float) -> Step:
        nonlocal done
        duration = max(args.step_s, args.min_requests / rate)
        rec, s = open_loop_step(url, model, size, rate, duration, args.seed + done, args)
        done += 1
        step = Step(rate=rate, offered=s["sent_rps"], throughput=s["achieved_rps"],
                    not_sent=s["not_sent_rate"], failed=s["error_rate"], p99=s["p99_s"])
        s["sustainable"] = ok = not any(rule(step) for rule in rules)
        s["loadavg_1m"] = os.getloadavg()[0]
        on_step(rec, s)
        log.info("  %s: %.1f req/s offered -> %.1f achieved, p50 %.1f ms, p99 %.1f ms %s",
                 server.label, rate, s["achieved_rps"], s["p50_s"] * 1e3, s["p99_s"] * 1e3,
                 "ok" if ok else "NOT sustainable")
        server.wait_idle()
        return replace(step, extra=s)

    lad = climb(measure, rate, up=args.growth, max_steps=args.max_steps, rules=rules,
                tight=1.06, heavy=0.0, retry=1, bisect=2)
    bad = lad.lowest_failing
    return {"single_request_s": single,
            "best": dict(lad.best.extra) if lad.best is not None else None,
            "first_unsustainable_rps": None if math.isnan(bad) else bad,
            "max_rps": lad.capacity, "steps": len(lad.steps), "note": lad.note}


def measure_overhead(server: ServerProcess, args: argparse.Namespace,
                     on_step: Any) -> dict[str, Any]:
    """The HTTP stack's own cost: closed-loop latency of the ``noop`` model on one
    connection, and its capacity ladder."""
    one_at_a_time(server.url, "noop", NOOP_SIZE, 50, args)  # warm-up
    lat = one_at_a_time(server.url, "noop", NOOP_SIZE, args.overhead_requests, args)
    out = {"closed_loop_p50_s": float(np.percentile(lat, 50)),
           "closed_loop_mean_s": float(lat.mean()),
           "closed_loop_p99_s": float(np.percentile(lat, 99))}
    out.update(ladder(server, "noop", NOOP_SIZE, 1, SLO_MS, args, on_step))
    return out


def bench(args: argparse.Namespace, command: str) -> tuple[dict[str, Any], Path]:
    """Run the benchmark ``args`` (the flags of ``servelab bench serve``) asks for; returns the
    summary (also in ``summary.json``) and the run folder."""
    from servelab.results import RESULTS_ROOT, new_run_dir, write_json, write_parquet

    root = Path(args.out) if args.out else RESULTS_ROOT
    out = new_run_dir("bench-serve", root)
    logdir = out / "logs"
    logdir.mkdir()
    steps: list[dict[str, Any]] = []
    records: list[pd.DataFrame] = []
    summary: dict[str, Any] = {
        "version": SUMMARY_VERSION, **run_metadata(command, import_torch=True),
        "throughput": [], "overhead": [], "memory": []}
    batching = []
    for item in args.batching:
        b, _, t = item.partition(":")
        batching.append((int(b), float(t or 0)))

    def saver(meta: dict[str, Any]) -> Any:
        def on_step(rec: pd.DataFrame, s: dict[str, Any]) -> None:
            meta["step"] = len([x for x in steps if x["config"] == meta["config"]])
            steps.append({**meta, **{k: v for k, v in s.items() if k != "statuses"},
                          "statuses": json.dumps(s["statuses"])})
            records.append(rec.assign(config_id=meta["config"], offered_rps=s["offered_rps"],
                                      step=meta["step"]))
        return on_step

    def flush() -> None:
        if steps:
            write_parquet(out / "steps.parquet", pd.DataFrame(steps))
        if records:
            write_parquet(out / "requests.parquet", pd.concat(records, ignore_index=True))
        write_json(out / "summary.json", summary)

    if args.peers:
        summary["peers"] = bench_peers(args, logdir, saver, flush)
        flush()
        return summary, out

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
                r = measure_overhead(srv, args, saver(meta))
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
                            r = ladder(srv, model, default_size(model), w, slo, args,
                                       saver(meta))
                            st = srv.get("/servelab/stats")
                    except RuntimeError as exc:
                        log.error("%s: %s", config, exc)
                        continue
                    best = r.get("best") or {}
                    summary["throughput"].append({
                        "config": config, "server": label, "model": model, "workers": w,
                        "max_batch": b, "batch_timeout_ms": t, "slo_ms": slo,
                        "single_request_s": r["single_request_s"],
                        "max_sustainable_rps": best.get("achieved_rps", 0.0),
                        "offered_rps": best.get("offered_rps", 0.0),
                        "p50_s": best.get("p50_s"), "p99_s": best.get("p99_s"),
                        "first_unsustainable_rps": r["first_unsustainable_rps"],
                        "max_rps": r["max_rps"], "note": r["note"],
                    })
                    if "process" in label:
                        summary["memory"].append(_memory_row(label, model, w, st, args))
                    flush()
    flush()
    return summary, out


PEER_MODEL = "mobilenet_v2"


def peer_config(text: str) -> tuple[str, int, int, float]:
    """``SERVER:WORKERS:MAX_BATCH:TIMEOUT_MS`` (``--peer-config``) as its parts."""
    parts = text.split(":")
    if len(parts) != 4 or parts[0] not in SETUPS:
        raise ValueError(f"--peer-config {text!r}: expected SERVER:WORKERS:MAX_BATCH:TIMEOUT_MS "
                         f"with SERVER one of {', '.join(SETUPS)}")
    return parts[0], int(parts[1]), int(parts[2]), float(parts[3])


def bench_peers(args: argparse.Namespace, logdir: Path, saver: Any, flush: Any
                ) -> list[dict[str, Any]]:
    """``--peers``: servelab at ``--peer-config`` and each peer (:mod:`servelab.loadgen.peers`)
    on MobileNetV2, every one up the same capacity ladder (:func:`ladder`) with the same
    open-loop client and JSON bodies (the peers parse no binary extension).  One row each:
    the best rate at p99 <= the SLO and the highest throughput seen; a peer that cannot run
    here is a row with the reason (and how to install what it lacks)."""
    from servelab.loadgen.peers import PEERS, missing
    from servelab.loadgen.peers.launch import PeerProcess

    args = argparse.Namespace(**{**vars(args), "binary": False})
    label, w, b, t = peer_config(args.peer_config)
    model, size, slo = PEER_MODEL, default_size(PEER_MODEL), _slo(PEER_MODEL, args)
    batching = f"batch {b} / {t:g} ms" if b > 1 else "no batching"
    runs: list[tuple[str, str, Any]] = [(
        "servelab", f"{label}, {w} workers, {batching}",
        lambda: ServerProcess(label, model, w, b, t, args, logdir))]
    flags = ["--variant", args.variant, "--seed", str(args.seed)]
    described = {"naive-fastapi": "uvicorn, 1 process, a forward pass per request",
                 "ray-serve": f"{w} replicas, @serve.batch {b} / {t:g} ms"}
    extra = {"ray-serve": ["--replicas", str(w), "--max-batch", str(b),
                           "--batch-timeout-ms", f"{t:g}",
                           "--intra-op-threads", str(args.intra_op_threads)]}
    for name in args.peer_names:
        if name not in PEERS:
            raise ValueError(f"unknown peer {name!r}; valid: {', '.join(PEERS)}")
        runs.append((name, described.get(name, ""),
                     functools.partial(PeerProcess, name, flags + extra.get(name, []),
                                       log=logdir / f"{name}.log")))
    rows: list[dict[str, Any]] = []
    for name, config, start in runs:
        row: dict[str, Any] = {"server": name, "config": config, "model": model, "slo_ms": slo,
                               "best_rps": None, "p99_s": None, "max_rps": None}
        why = missing(name) if name in PEERS else None
        if why is not None:
            log.warning("peer %s skipped: %s", name, why)
            rows.append({**row, "note": f"skipped: {why}"})
            continue
        meta = {"kind": "peers", "server": name, "model": model, "workers": w,
                "max_batch": b, "batch_timeout_ms": t, "config": f"peer-{name}"}
        log.info("peers: %s (%s)", name, config)
        try:
            with start() as srv:
                r = ladder(srv, model, size, w if name in ("servelab", "ray-serve") else 1,
                           slo, args, saver(meta))
        except RuntimeError as exc:
            log.error("%s: %s", name, exc)
            rows.append({**row, "note": f"failed: {exc}"})
            continue
        best = r.get("best") or {}
        rows.append({**row, "best_rps": best.get("achieved_rps"), "p99_s": best.get("p99_s"),
                     "max_rps": r["max_rps"], "single_request_s": r["single_request_s"],
                     "note": r["note"]})
        flush()
    return rows


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
