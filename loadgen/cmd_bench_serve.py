"""``servelab bench serve``: benchmark the live servers (:func:`servelab.loadgen.serve_bench.bench`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from servelab.loadgen.peers import PEERS
from servelab.loadgen.serve_bench import DEFAULT_SLO_MS, SLO_MS, bench
from servelab.reproduce import command_line
from servelab.servers.base import SETUPS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--servers", nargs="+", default=list(SETUPS),
                        choices=list(SETUPS), help="server configurations to measure")
    parser.add_argument("--models", nargs="*",
                        default=["mobilenet_v2", "distilbert", "lstm_forecaster"])
    parser.add_argument("--pool-sizes", nargs="+", type=int, default=[1, 2],
                        help="inference workers (threads or processes)")
    parser.add_argument("--batching", nargs="+", default=["1:0"],
                        help="MAX_BATCH:TIMEOUT_MS settings to sweep (default: 1:0, none)")
    parser.add_argument("--scheduler", default="fifo")
    parser.add_argument("--intra-op-threads", type=int, default=1)
    parser.add_argument("--model-lock", default="none",
                        help="threads: model lock (default none: the zoo's models are "
                        "read-only at inference, so no lock is needed)")
    parser.add_argument("--variant", default="full", choices=["full", "tiny"])
    parser.add_argument("--step-s", type=float, default=4.0, help="seconds per load step")
    parser.add_argument("--min-requests", type=int, default=60,
                        help="a step lasts long enough for at least this many requests")
    parser.add_argument("--warmup-s", type=float, default=1.0,
                        help="unmeasured load before the ladder starts")
    parser.add_argument("--growth", type=float, default=1.3)
    parser.add_argument("--max-steps", type=int, default=14)
    parser.add_argument("--slo-ms", nargs="*", default=[],
                        help="MODEL=MS p99 bounds of a sustainable step "
                        f"(default {SLO_MS:g} ms; distilbert {DEFAULT_SLO_MS['distilbert']:g})")
    parser.add_argument("--overhead", action=argparse.BooleanOptionalAction, default=True,
                        help="measure each server's per-request overhead with the noop model")
    parser.add_argument("--overhead-requests", type=int, default=400)
    parser.add_argument("--memory-only", action="store_true",
                        help="only start each process pool and report its memory per worker")
    parser.add_argument("--binary", action=argparse.BooleanOptionalAction, default=True,
                        help="binary tensor extension for request bodies (as tritonclient)")
    parser.add_argument("--peers", action="store_true",
                        help="only the comparison with other servers: servelab at "
                        "--peer-config next to each of --peer-names, MobileNetV2, JSON bodies "
                        "for all, one ladder each")
    parser.add_argument("--peer-config", default="processes:2:16:5",
                        help="--peers: servelab's SERVER:WORKERS:MAX_BATCH:TIMEOUT_MS (the "
                        "batching Ray Serve gets too; default: %(default)s)")
    parser.add_argument("--peer-names", nargs="+", default=list(PEERS), choices=list(PEERS),
                        help="--peers: the peers to run (ray-serve needs pip install -e "
                        "'.[ray]'; skipped with a note without it)")
    parser.add_argument("--out", default=None, help="results root (default: results/)")
    parser.add_argument("--seed", type=int, default=0)


def _ms(seconds: float | None) -> float:
    """A latency in the summary (seconds, None when not measured) in ms for a table."""
    return float("nan") if seconds is None else seconds * 1e3


def _print(summary: dict[str, Any], out: Path) -> None:
    print(f"results: {out}\nreproduce: {summary['command']}")
    if summary["overhead"]:
        print("\nper-request overhead (noop model, one connection, closed loop):")
        for o in summary["overhead"]:
            best = o.get("best") or {}
            print(f"  {o['server']:14s} p50 {_ms(o['closed_loop_p50_s']):6.2f} ms  "
                  f"mean {_ms(o['closed_loop_mean_s']):6.2f} ms  max {best.get('achieved_rps', 0):6.0f}"
                  f" req/s (p99 {_ms(best.get('p99_s')):.1f} ms)")
    if summary["throughput"]:
        print("\nmax sustainable throughput (p99 within SLO, <= 1% errors):")
        for t in summary["throughput"]:
            print(f"  {t['config']:42s} {t['max_sustainable_rps']:7.1f} req/s  "
                  f"p50 {_ms(t['p50_s']):7.1f} ms  p99 {_ms(t['p99_s']):7.1f} ms  "
                  f"(1 req: {_ms(t['single_request_s']):.1f} ms)")
    if summary.get("peers"):
        print(format_peers(summary["peers"]))
    if summary["memory"]:
        print("\nprocess pools, memory per worker (MiB):")
        for m in summary["memory"]:
            uss = ", ".join(f"{x:.0f}" for x in m["worker_uss_mb"])
            pss = ", ".join(f"{x:.0f}" for x in m["worker_pss_mb"])
            print(f"  {m['server']:14s} {m['model']:16s} w{m['workers']}  USS [{uss}]  "
                  f"PSS [{pss}]  zygote USS {m['zygote_uss_mb']:.0f} PSS {m['zygote_pss_mb']:.0f}")


def format_peers(rows: list[dict[str, Any]]) -> str:
    """The --peers table: best rate at p99 <= the SLO and maximum throughput per server."""
    def num(x: Any, fmt: str) -> str:
        return "-" if x is None else format(x, fmt)

    slo = rows[0]["slo_ms"] if rows else SLO_MS
    wc = max(len(f"{r['server']} ({r['config']})") for r in rows)
    lines = ["\nservelab and its peers, MobileNetV2, JSON bodies, the same open-loop client:",
             f"  {'server':<{wc}}  {f'best rate at p99 <= {slo:g} ms':>28}  {'max throughput':>15}"]
    for r in rows:
        name = f"{r['server']} ({r['config']})"
        p99 = None if r["p99_s"] is None else r["p99_s"] * 1e3
        best = (f"{num(r['best_rps'], '.1f')} req/s (p99 {num(p99, '.0f')} ms)"
                if r["best_rps"] is not None else "never")
        mx = f"{num(r['max_rps'], '.1f')} req/s" if r["max_rps"] is not None else "-"
        line = f"  {name:<{wc}}  {best:>28}  {mx:>15}"
        if r.get("note", "").startswith(("skipped", "failed")):
            line += f"  {r['note']}"
        lines.append(line)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    summary, out = bench(args, command_line("bench serve", add_arguments, args))
    _print(summary, out)
    return 0
