"""``servelab gateway``: the adaptive gateway, serving until SIGTERM / SIGINT.

One OIP v2 endpoint in front of live backends (``servelab serve`` processes).  Every decision
window it measures what its clients saw, teaches the policy (its prior: a policy file from
``servelab meta train``, or a fresh policy by name), and switches the backend when the policy
picks another arm: a scheduler change is applied in place, another concurrency model or pool
size starts (or reuses a warm) backend, shifts new requests to it and drains the old one — no
request is dropped.  ``/dashboard`` shows it live; ``/servelab/meta`` explains each switch.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from servelab.core.config import add_dataclass_args, from_args
from servelab.gateway.serve import GatewayConfig, serve

EPILOG = """\
what a switch does:
  same server, other scheduler  -> POST /servelab/config on the running backend (queued
                                   requests move into the new policy; no new process)
  other concurrency / pool size -> a warm backend is reused, or a new one is started and
                                   awaited until /v2/health/ready; new requests go to it;
                                   the old one finishes its in-flight requests, then stays
                                   warm (up to --max-warm / --memory-mb) or is drained
  a backend that fails to start -> the gateway stays where it is (logged as 'failed')
endpoints: /v2/... (forwarded), /v2/health/*, /metrics, /servelab/meta, /servelab/timeseries,
           /dashboard
example:
  servelab gateway --arms arms.yaml --policy results/meta-train-*/policy.json --port 8080
  servelab load --workload shifting --target http://127.0.0.1:8080
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__.split("\n\n", 1)[1].strip()
    parser.epilog = EPILOG
    add_dataclass_args(parser, GatewayConfig)


def run(args: argparse.Namespace) -> int:
    cfg = from_args(GatewayConfig, args)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for s in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(s, stop.set)
        ctl = await serve(cfg, stop)
        n = sum(1 for s in ctl.switches if s["kind"] != "start")
        print(f"servelab gateway: stopped after {len(ctl.windows)} windows, {n} switches",
              flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0
