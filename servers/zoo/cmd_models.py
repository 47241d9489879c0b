"""``servelab models``: list the model zoo with each model's schema, size and measured
single-request latency (one intra-op thread unless ``--threads`` says otherwise)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from servelab.servers.zoo import MODELS, get_model
from servelab.servers.zoo.describe import describe


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="*", metavar="MODEL", help=f"of {', '.join(MODELS)}")
    parser.add_argument("--variant", choices=("full", "tiny"), default="full")
    parser.add_argument("--weights", help="a local state_dict file (one MODEL only)")
    parser.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--size", type=int, help="input size (default: each model's own)")
    parser.add_argument("--repeats", type=int, default=20, help="timed requests per model")
    parser.add_argument("--warmups", type=int, default=3)
    parser.add_argument("--no-measure", action="store_true", help="schema and size only")
    parser.add_argument("--json", action="store_true", help="print one JSON object per model")


def _schema(specs: list[dict[str, Any]]) -> str:
    return ", ".join(f"{s['name']} {s['datatype']}{tuple(s['shape'])}" for s in specs)


def run(args: argparse.Namespace) -> int:
    names = args.models or list(MODELS)
    if args.weights and len(names) != 1:
        raise ValueError("--weights needs exactly one MODEL")
    for name in names:
        model = get_model(name, variant=args.variant, weights=args.weights, seed=args.seed)
        info = describe(
            model,
            threads=args.threads,
            repeats=args.repeats,
            warmups=args.warmups,
            size=args.size,
            measure=not args.no_measure,
        )
        if args.json:
            print(json.dumps(info), flush=True)
            continue
        print(
            f"{info['name']} ({info['variant']}): {info['parameters'] / 1e6:.2f}M parameters, "
            f"{info['param_mb']:.1f} MiB"
        )
        print(f"  inputs:  {_schema(info['inputs'])}")
        print(f"  outputs: {_schema(info['outputs'])}")
        lat = info.get("latency")
        if lat:
            print(
                f"  latency: {lat['median_s'] * 1e3:.2f} ms median (p10 {lat['p10_s'] * 1e3:.2f}, "
                f"p90 {lat['p90_s'] * 1e3:.2f}) at {lat['input_size']} {info['size_unit']}, "
                f"{lat['threads']} thread(s), batch 1; preprocess "
                f"{lat['preprocess_s'] * 1e3:.2f} ms"
            )
        print(flush=True)
    return 0
