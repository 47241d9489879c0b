"""A peer server as a subprocess: ``python -m <peer module> --port 0 ...``, started and
stopped (SIGTERM) like :class:`servelab.servers.launch.ServerProcess`, whose "ready at URL"
line it prints."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from servelab.core.config import ServerConfig
from servelab.loadgen.peers import PEERS
from servelab.servers import launch
from servelab.servers.base import ServeOptions

IDLE_PAUSE_S = 0.5
"""A peer has no in-flight counter: between load steps it gets this pause instead."""


class PeerProcess(launch.ServerProcess):
    """``with PeerProcess("naive-fastapi", ["--variant", "tiny"]) as p: ... p.url ...``"""

    def __init__(self, name: str, flags: list[str], label: str = "", log: Path | None = None,
                 start_timeout: float = 300.0):
        super().__init__(ServerConfig(models=("mobilenet_v2",)), ServeOptions(port=0), log=log,
                         stop_timeout=30.0, start_timeout=start_timeout)
        self.name = name
        self.label = label or name
        self.cmd = [sys.executable, "-m", PEERS[name], "--port", "0", *flags]

    def wait_idle(self, timeout: float = 60.0) -> None:
        time.sleep(IDLE_PAUSE_S)
