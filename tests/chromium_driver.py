"""Headless Chromium (the Debian package ``chromium``) for the browser tests: one page driven
over the DevTools protocol on a pipe (``--remote-debugging-pipe``: JSON messages,
NUL-separated, on fds 3 and 4) — no websocket library, no playwright.  Imported by the tests as
``chromium_driver`` (tests/conftest.py puts this folder on ``sys.path``)."""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

INSTALL = "apt-get update && apt-get install -y chromium"


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


LAUNCH = ("import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
          "os.closerange(5, 256); os.execv(sys.argv[3], sys.argv[3:])")


def _high(fds: tuple[int, int]) -> tuple[int, int]:
    """The pipe's ends moved above fd 10, so moving them onto 3 and 4 never collides."""
    out = tuple(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds)
    for fd in fds:
        os.close(fd)
    return out[0], out[1]


class Browser:
    """Headless Chromium with one page, spoken to over the DevTools pipe."""

    def __init__(self, binary: str, profile_dir: str) -> None:
        to_r, self._to_w = _high(os.pipe())  # we write commands, chromium reads them on fd 3
        self._from_r, from_w = _high(os.pipe())  # chromium writes replies on fd 4
        flags = ["--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
                 "--no-first-run", "--disable-extensions", "--hide-scrollbars",
                 f"--user-data-dir={profile_dir}", "about:blank"]
        # A one-line launcher puts the pipe ends on fds 3 and 4 (no preexec_fn: threads run).
        self.log = Path(profile_dir) / "chromium.log"
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-c", LAUNCH, str(to_r), str(from_w),
                                          binary, *flags],
                                         pass_fds=(to_r, from_w), stdout=subprocess.DEVNULL,
                                         stderr=err)
        os.close(to_r)
        os.close(from_w)
        self._buf = b""
        self._id = 0
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None, timeout: float = 30.0) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        end = time.monotonic() + timeout
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply["result"]  # type: ignore[no-any-return]
            left = end - time.monotonic()
            if left <= 0 or not select.select([self._from_r], [], [], left)[0]:
                raise TimeoutError(f"no reply to {method} within {timeout} s")
            chunk = os.read(self._from_r, 1 << 20)
            if not chunk:
                lines = [x for x in self.log.read_text().splitlines() if "dbus" not in x]
                raise RuntimeError("chromium closed the DevTools pipe: " + "\n".join(lines[-5:]))
            self._buf += chunk

    def page(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.call(method, params, self.session)

    def eval(self, expression: str) -> Any:
        out = self.page("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return out["result"].get("value")

    def close(self) -> None:
        for fd in (self._to_w, self._from_r):
            os.close(fd)
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def chromium_or_skip(what: str) -> str:
    """The browser's path, or skip the test saying how to install it."""
    binary = find_chromium()
    if binary is None:
        pytest.skip(f"chromium is not installed, so {what} is skipped; install it with: "
                    f"{INSTALL}")
    return binary
