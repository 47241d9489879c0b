"""``servelab load``: drive an OIP v2 endpoint open loop from a workload, write records + summary."""

from __future__ import annotations

import argparse

from servelab.core.config import add_dataclass_args, from_args
from servelab.loadgen.generator import SenderOptions
from servelab.loadgen.runner import LoadConfig, format_summary, run_load


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_args(parser, LoadConfig)
    add_dataclass_args(parser, SenderOptions)


def run(args: argparse.Namespace) -> int:
    cfg = from_args(LoadConfig, args)
    sender = from_args(SenderOptions, args)
    result = run_load(cfg, sender, handle_sigint=True)
    print(format_summary(result.summary))
    print(f"wrote {result.path}/records.parquet and summary.json")
    print(f"reproduce: {result.summary['command']}")
    return 0
