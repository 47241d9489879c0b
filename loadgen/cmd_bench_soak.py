"""``servelab bench soak``: a server at 2x its capacity for 10 minutes, with a kill -9 of a
process worker halfway and a SIGTERM drain at the end (:mod:`servelab.loadgen.soak`); prints
the verdict target by target and writes ``results/bench-soak-<time>/``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import pandas as pd

from servelab.core.config import ServerConfig, add_dataclass_args, from_args
from servelab.loadgen.generator import SenderOptions
from servelab.loadgen.soak_verdict import Targets, format_verdict
from servelab.reproduce import command_line, run_metadata
from servelab.servers.base import ServeOptions

FULL = {"duration_s": 600.0, "step_s": 4.0, "growth": 1.3, "max_steps": 12,
        "rss_baseline_s": 60.0}
QUICK = {"duration_s": 100.0, "step_s": 2.5, "growth": 1.5, "max_steps": 8,
         "rss_baseline_s": 30.0}
"""Defaults of the flags left unset: the full soak, and ``--quick`` (<= 3 minutes in all)."""
SUMMARY_VERSION = 2
"""``summary.json``'s and the parquet files' format: 2 has every latency and delay in seconds
(``ok_p99_s``, ``p99_s``, ``replaced_s``, ``after_s``; version 1 had ``*_ms``).  ``slo_ms``
and ``batch_timeout_ms`` echo the flags, in ms."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    server = parser.add_argument_group("server under soak (servelab serve's flags)")
    add_dataclass_args(server, ServerConfig)  # type: ignore[arg-type]
    # Deployed for overload: a bounded wait in the server (no request starts after more than
    # the SLO there; the front door refuses what would wait longer: --max-queue-wait-ms, unset =
    # --slo-ms), a short admission queue, and workers niced below the front door.
    parser.set_defaults(concurrency="processes", workers=2, models=["mobilenet_v2"],
                        max_batch=16, batch_timeout_ms=5.0, queue_capacity=64,
                        max_queue_wait_ms=None)
    server.add_argument("--worker-nice", type=int, default=10,
                        help="the server's --worker-nice: inference workers below the front "
                        "door, so parsing, 503s and health keep the CPU at any overload "
                        "(default: %(default)s; 0 = the plain server)")
    server.add_argument("--model", default=None, help="the model the load sends to "
                        "(default: the first of --models)")
    server.add_argument("--variant", default="full", choices=["full", "tiny"])
    server.add_argument("--drain-timeout-s", type=float, default=10.0,
                        help="the server's drain limit after SIGTERM (default: %(default)s)")
    soak = parser.add_argument_group("soak")
    soak.add_argument("--quick", action="store_true",
                      help=f"a {QUICK['duration_s']:g} s soak and a short ladder: <= 3 minutes "
                      "in all")
    soak.add_argument("--duration-s", type=float, default=None,
                      help=f"seconds of overload (default {FULL['duration_s']:g}; --quick "
                      f"{QUICK['duration_s']:g})")
    soak.add_argument("--overload", type=float, default=2.0,
                      help="offered rate as a multiple of the capacity (default: %(default)s)")
    soak.add_argument("--kill-at-s", type=float, default=None,
                      help="when to kill -9 a process worker (default: halfway)")
    soak.add_argument("--kill", action=argparse.BooleanOptionalAction, default=True,
                      help="kill -9 one process worker during the soak")
    soak.add_argument("--drain", action=argparse.BooleanOptionalAction, default=True,
                      help="SIGTERM the server at the end, under load")
    soak.add_argument("--tail-s", type=float, default=3.0,
                      help="seconds of load after the SIGTERM (default: %(default)s)")
    soak.add_argument("--senders", type=int, default=1, help="load generator processes")
    soak.add_argument("--client-timeout-s", type=float, default=5.0,
                      help="a request unanswered this long is a client timeout")
    soak.add_argument("--max-lag-s", type=float, default=1.0,
                      help="a send this late is not_sent (the generator fell behind)")
    soak.add_argument("--binary", action=argparse.BooleanOptionalAction, default=False,
                      help="binary tensor bodies (default: JSON, as issue 14 measured)")
    soak.add_argument("--rss-baseline-s", type=float, default=None,
                      help=f"RSS growth is measured from this mark (default "
                      f"{FULL['rss_baseline_s']:g}; --quick {QUICK['rss_baseline_s']:g})")
    cap = parser.add_argument_group("capacity (servelab bench serve's ladder)")
    cap.add_argument("--capacity", type=float, default=None,
                     help="take this capacity (req/s) instead of climbing the ladder")
    cap.add_argument("--capacity-p99-ms", type=float, default=None,
                     help="with --capacity: its p99 (default: measured in one step)")
    cap.add_argument("--slo-ms", type=float, default=100.0,
                     help="p99 bound of a sustainable ladder step (default: %(default)s)")
    cap.add_argument("--step-s", type=float, default=None, help="seconds per ladder step")
    cap.add_argument("--min-requests", type=int, default=60)
    cap.add_argument("--warmup-s", type=float, default=1.0)
    cap.add_argument("--growth", type=float, default=None)
    cap.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress line during the soak")
    parser.add_argument("--out", default=None, help="results root (default: results/)")
    parser.add_argument("--seed", type=int, default=0)


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with every unset flag given its full or ``--quick`` default."""
    eff = argparse.Namespace(**vars(args))
    for k, v in (QUICK if args.quick else FULL).items():
        if getattr(eff, k) is None:
            setattr(eff, k, v)
    if eff.max_queue_wait_ms is None:
        eff.max_queue_wait_ms = eff.slo_ms
    return eff


def run(args: argparse.Namespace) -> int:
    from servelab.loadgen.payloads import servable_make_input
    from servelab.loadgen.serve_bench import default_size
    from servelab.loadgen.soak import (
        SoakPlan,
        SoakServer,
        measure_capacity,
        plan_dict,
        poisson_spec,
        run_soak,
        verdict,
        write_soak,
    )
    from servelab.results import RESULTS_ROOT, new_run_dir

    command = command_line("bench soak", add_arguments, args, omit=("out",))
    eff = resolve(args)
    config = from_args(ServerConfig, eff)
    model = eff.model or config.models[0]
    if model not in config.models:
        raise ValueError(f"--model {model} is not among --models {' '.join(config.models)}")
    kill_at = (eff.kill_at_s if eff.kill_at_s is not None else eff.duration_s / 2) \
        if eff.kill else None
    plan = SoakPlan(eff.duration_s, eff.overload, kill_at, eff.drain, eff.tail_s,
                    drain_wait_s=eff.drain_timeout_s + 30)
    targets = Targets(rss_baseline_s=eff.rss_baseline_s)
    options = ServeOptions(port=0, variant=eff.variant, drain_timeout_s=eff.drain_timeout_s,
                           seed=eff.seed, worker_nice=eff.worker_nice)
    out = new_run_dir("bench-soak", Path(eff.out) if eff.out else RESULTS_ROOT)
    print(f"results: {out}\nreproduce: {command}", flush=True)
    steps: list[dict[str, Any]] = []
    started = time.monotonic()
    size = default_size(model)
    with SoakServer(config, options, log=out / "server.log",
                    stop_timeout=eff.drain_timeout_s + 10) as srv:
        def on_step(rec: pd.DataFrame, s: dict[str, Any]) -> None:
            steps.append({k: v for k, v in s.items() if k != "statuses"})

        capacity, _ = measure_capacity(srv, model, size, eff, on_step)
        rate = plan.overload * capacity.rps
        print(f"capacity {capacity.rps:.1f} req/s at p99 {capacity.p99_s * 1e3:.1f} ms "
              f"({capacity.source}); soaking at {rate:.1f} req/s for {plan.duration:g} s",
              flush=True)
        spec = poisson_spec(model, size, rate, plan.schedule_s, eff.seed + 7)
        soak = run_soak(srv, spec, plan, sender=SenderOptions(
            timeout=eff.client_timeout_s, max_lag=eff.max_lag_s), senders=eff.senders,
            binary=eff.binary, make_input=servable_make_input("tiny"), progress=eff.progress)
    v = verdict(soak, capacity, targets)
    summary = {"version": SUMMARY_VERSION, "kind": "bench-soak", **run_metadata(command, import_torch=True),
               "server": config.to_dict(), "worker_nice": eff.worker_nice, "model": model, "input_size": size,
               "variant": eff.variant, "offered_rps": rate, "plan": plan_dict(plan),
               "events": soak.events, "verdict": v, "wall_s": time.monotonic() - started}
    title = (f"{config.config_id} {model}: {rate:.0f} req/s offered = {plan.overload:g}x "
             f"capacity {capacity.rps:.0f} req/s")
    write_soak(out, soak, summary, pd.DataFrame(steps) if steps else None, title)
    print(format_verdict(v))
    print(f"503 share {v['share_503']:.1%}; not sent (generator behind) {v['not_sent']}; "
          f"in the drain: {v['drain']['ok']} ok, {v['drain']['rejected_503']} x 503, "
          f"{v['drain']['refused']} refused (port closed), {v['drain']['lost']} lost; after exit {v['after_exit']['requests']} (not judged)")
    if not v["overloaded"]:
        print(f"note: not an overload -- the server answered ok at {v['goodput_rps']:.1f} of "
              f"{v['offered_rps']:.1f} req/s offered: its throughput limit is above "
              f"{plan.overload:g}x its capacity at p99 <= {eff.slo_ms:g} ms ({capacity.rps:.1f} "
              "req/s; batching trades latency for throughput, or the ladder ran on a busy "
              "machine); raise --overload or give --capacity to push it past")
    print(f"{'all targets met' if v['met'] else 'some targets missed'}; wall time "
          f"{summary['wall_s']:.0f} s; figure {out / 'soak.png'}")
    return 1 if args.strict and not v["met"] else 0
