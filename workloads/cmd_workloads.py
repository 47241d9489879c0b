"""``servelab workloads``: list the shipped workloads, or show one with its statistics."""

from __future__ import annotations

import argparse

import numpy as np
import yaml

from servelab.workloads import list_workloads, load_workload


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("workload", nargs="?", help="a shipped name or a YAML/JSON file to show")


def run(args: argparse.Namespace) -> int:
    if args.workload is None:
        print(f"{'name':<12} {'duration':>8} {'mean rate':>10}  models / description")
        for name in list_workloads():
            spec = load_workload(name)
            print(
                f"{name:<12} {spec.total_duration:>7.0f}s {spec.mean_rate():>8.1f}/s  "
                f"{', '.join(spec.models)}\n{'':<34}{spec.description.strip()}"
            )
        print("\nshow one: servelab workloads NAME")
        return 0
    spec = load_workload(args.workload)
    print(yaml.safe_dump(spec.to_dict(), sort_keys=False).rstrip())
    arr = spec.generate()
    print(f"\ngenerated (seed {spec.seed}): {len(arr)} requests over {spec.total_duration:.0f}s")
    names = arr.model_names()
    for m in spec.models:
        sizes = arr.input_size[names == m]
        if sizes.size:
            print(
                f"  {m:<16} {sizes.size:>7} requests  input size p50 {np.median(sizes):.0f}"
                f"  p99 {np.percentile(sizes, 99):.0f}  max {sizes.max()}"
            )
    return 0
