"""The calibration worker: ``python -m servelab.calibrate.worker '<point json>'``.

Runs one point's benchmark (warm-ups, then samples) and prints one JSON object
``{"samples": [...], ...}`` on its last line of stdout.  Benchmarks register in ``BENCHES``.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

BENCHES: dict[str, str] = {
    # name -> module with measure(params, warmups, samples) -> dict
    "sleep": "servelab.calibrate.benches.sleep",
    "ipc": "servelab.calibrate.benches.ipc",
    "ctxswitch": "servelab.calibrate.benches.ctxswitch",
    "perfstat": "servelab.calibrate.benches.perfstat",
    "service": "servelab.calibrate.benches.service",
    "interference": "servelab.calibrate.benches.interference",
    "corun": "servelab.calibrate.benches.corun",
    "warmth": "servelab.calibrate.benches.warmth",
    "frontend": "servelab.calibrate.benches.frontend",
    "eventloop": "servelab.calibrate.benches.eventloop",
    "memory": "servelab.calibrate.benches.memory",
    "http": "servelab.calibrate.benches.http",
    "switch": "servelab.calibrate.benches.switch",
    "speed": "servelab.calibrate.benches.speed",
}


def measure(point: dict[str, Any]) -> dict[str, Any]:
    name = point["bench"]
    try:
        module = importlib.import_module(BENCHES[name])
    except KeyError:
        raise ValueError(f"unknown benchmark {name!r}; valid: {', '.join(BENCHES)}") from None
    return dict(module.measure(point.get("params", {}), point.get("warmups", 2),
                               point.get("samples", 10)))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m servelab.calibrate.worker '<point json>'", file=sys.stderr)
        return 2
    result = measure(json.loads(argv[0]))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    from servelab.cli import exit_now  # skip the interpreter teardown (seconds with torch)

    exit_now(main(sys.argv[1:]))
