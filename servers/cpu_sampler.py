"""Whole-machine CPU utilisation for the per-request trace (``cpu_util_at_arrival``)."""

from __future__ import annotations

import math
import threading


class CpuSampler:
    """Whole-machine CPU utilisation (0-100), sampled every ``interval`` seconds in a daemon
    thread, so that reading it at each request's arrival costs nothing."""

    def __init__(self, interval: float = 0.1):
        import psutil

        self._psutil = psutil
        self.interval = interval
        self.value = math.nan
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
        psutil.cpu_percent(interval=None)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.value = self._psutil.cpu_percent(interval=None)

    def close(self) -> None:
        self._stop.set()
