"""``servelab bench gateway``: what the gateway costs — the same load on a backend directly
and through the gateway, side by side (:func:`servelab.gateway.bench.bench`)."""

from __future__ import annotations

import argparse

from servelab.core.config import add_dataclass_args, from_args
from servelab.gateway import bench as _bench
from servelab.gateway.bench import BenchGatewayConfig, bench, format_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (_bench.__doc__ or "").split("\n\n", 1)[1].strip()
    add_dataclass_args(parser, BenchGatewayConfig)


def run(args: argparse.Namespace) -> int:
    result = bench(from_args(BenchGatewayConfig, args))
    print(format_table(result))
    print(f"wrote {result['path']}/summary.json")
    print(f"reproduce: {result['command']}")
    return 0
