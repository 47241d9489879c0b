"""``servelab serve``: run one live server until SIGTERM / SIGINT (the process supervisor).

The server loop lives in :mod:`servelab.servers.base` and its implementations; this module only
owns the process: it parses the flags (``ServerConfig`` + ``ServeOptions``, one source of
truth), starts the server, prints its URL once it answers ready, and on SIGTERM or SIGINT stops
intake, drains in-flight requests for up to ``--drain-timeout-s`` and exits.  A second signal
stops at once.  Also runnable as ``python -m servelab.cli serve``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any

from servelab.core.config import ServerConfig, add_dataclass_args, from_args
from servelab.servers.base import ServeOptions, make_server

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_args(parser, ServerConfig)
    add_dataclass_args(parser, ServeOptions)


def run(args: argparse.Namespace) -> int:
    config = from_args(ServerConfig, args)
    options = from_args(ServeOptions, args)
    stop = threading.Event()
    signals = {"n": 0}

    def on_signal(signum: int, frame: Any) -> None:
        signals["n"] += 1
        if signals["n"] > 1:
            log.warning("second signal: stopping without draining")
            raise SystemExit(1)
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    server = make_server(config, options)
    try:
        server.start()
        print(f"servelab serve: {server.kind} server ({server.frontend_name}, "
              f"{config.config_id}) ready at {server.url}", flush=True)
        while not stop.wait(0.5):
            pass
        print(f"servelab serve: draining (up to {options.drain_timeout_s:g} s)", file=sys.stderr,
              flush=True)
        drained = server.shutdown(options.drain_timeout_s)
        print(f"servelab serve: stopped ({'drained' if drained else 'drain timed out'})",
              file=sys.stderr, flush=True)
        return 0
    finally:
        if not server.stopped:
            server.stop()
        for s, h in old.items():
            signal.signal(s, h)
