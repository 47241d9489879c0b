"""The progress line printed while a run goes on.

It reads the senders' live counters (:data:`servelab.loadgen.generator.COUNTERS`, one row per
sender process, possibly in shared memory) from a background thread once a second, so it
never touches the event loop that sends.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

import numpy as np

from servelab.loadgen.generator import COUNTERS

_C = {name: i for i, name in enumerate(COUNTERS)}


def progress_line(counts: np.ndarray, total: int, elapsed: float, duration: float) -> str:
    """One line: elapsed time, sent, per-status counts, in flight and lagging sends."""
    c = counts.sum(axis=0) if counts.ndim == 2 else counts
    sent = int(c[_C["sent"]])
    ended = {s: int(c[_C[s]]) for s in ("ok", "rejected", "timeout", "error", "not_sent")}
    in_flight = max(0, int(c[_C["in_flight"]]))
    late = int(c[_C["lag_over_1ms"]])
    return (
        f"[{elapsed:6.1f}s/{duration:.0f}s] sent {sent}/{total}  ok {ended['ok']}  "
        f"rejected {ended['rejected']}  timeout {ended['timeout']}  error {ended['error']}  "
        f"not_sent {ended['not_sent']}  in flight {in_flight}  "
        f"lag>1ms {100.0 * late / sent if sent else 0.0:.1f}%"
    )


class Progress:
    """Print :func:`progress_line` every ``interval`` seconds until stopped.

    On a terminal the line is rewritten in place; otherwise one line is printed every
    ``interval * 10`` seconds.
    """

    def __init__(self, counters: Callable[[], np.ndarray], total: int, duration: float,
                 stream: TextIO | None = None, interval: float = 1.0) -> None:
        self.counters = counters
        self.total = total
        self.duration = duration
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if self.tty else interval * 10
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loadgen-progress", daemon=True)

    def start(self, t0: float | None = None) -> Progress:
        self.t0 = t0 if t0 is not None else time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._print(final=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._print()

    def _print(self, final: bool = False) -> None:
        line = progress_line(
            np.array(self.counters()), self.total, max(0.0, time.monotonic() - self.t0), self.duration
        )
        if self.tty:
            self.stream.write("\r" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
