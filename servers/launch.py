"""Start a live server as a subprocess (``servelab serve``) and stop it cleanly.

Used by everything that measures a live server from outside — benchmarks, calibration, the
sim-vs-live cross-check — so a server under test never shares a process (or a GIL) with the
code measuring it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from servelab.core.config import ServerConfig, to_flags
from servelab.servers.base import ServeOptions


class ServerProcess:
    """``with ServerProcess(config, options) as srv: ... srv.url ...``

    The server binds ``options.port`` (0 = any free port; the URL is read from its "ready at"
    line).  Its stderr goes to ``log`` (a file path) or is discarded.  Exit sends SIGTERM, which
    drains in-flight requests, and kills it if it has not stopped within ``stop_timeout``.
    """

    def __init__(self, config: ServerConfig, options: ServeOptions | None = None,
                 log: Path | None = None, stop_timeout: float = 30.0, start_timeout: float = 180.0):
        options = options if options is not None else ServeOptions(port=0)
        self.config, self.options = config, options
        self.cmd = [sys.executable, "-m", "servelab.cli", "serve",
                    *to_flags(config, skip_defaults=False), *to_flags(options)]
        self.log_path = log
        self.stop_timeout, self.start_timeout = stop_timeout, start_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> ServerProcess:
        err: Any = open(self.log_path, "w") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        finally:
            if self.log_path:
                err.close()
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "ready at " not in line:
            self.stop()
            where = f"; see {self.log_path}" if self.log_path else ""
            raise RuntimeError(f"server did not start: {' '.join(self.cmd)}{where}")
        self.url = line.strip().rsplit(" ", 1)[-1]
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    @property
    def hostport(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        return host, int(port)

    def get(self, path: str) -> Any:
        """GET a JSON endpoint of the server."""
        with urllib.request.urlopen(self.url + path, timeout=60) as r:  # noqa: S310 (loopback)
            return json.loads(r.read())

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Wait (up to ``timeout`` s) until the server holds no request in flight."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.get("/servelab/stats")["inflight"] == 0:
                return
            time.sleep(0.2)

    def metrics(self) -> str:
        with urllib.request.urlopen(self.url + "/metrics", timeout=60) as r:  # noqa: S310
            return r.read().decode()
