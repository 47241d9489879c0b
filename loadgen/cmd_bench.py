"""``servelab bench load``: the load generator's capacity and lag against the stub server
(:func:`servelab.loadgen.bench.bench`)."""

from __future__ import annotations

import argparse

from servelab.core.config import add_dataclass_args, from_args
from servelab.loadgen.bench import BenchConfig, bench, format_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_args(parser, BenchConfig)


def run(args: argparse.Namespace) -> int:
    cfg = from_args(BenchConfig, args)
    result = bench(cfg)
    print(format_table(result))
    print(f"wrote {result['path']}/summary.json")
    print(f"reproduce: {result['command']}")
    return 0
