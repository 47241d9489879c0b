"""Measured: the release build lets other Python threads run during a call, the hold build does
not.

A counter thread spins in Python.  The main thread makes one long kernel call (a big LSTM input,
~0.2-0.5 s) and reads the counter just before and just after.  The progress it made is compared
with its free-running rate over the same time.  With the GIL released the counter keeps running
(on the other core, or time-sliced with the call by the OS); with the GIL held it can only run in
the few milliseconds around the call (the GIL hand-over at entry and exit, one switch interval
each).  Thresholds are loose (10 %) so a busy machine does not make the test flaky.
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest

from servelab.ffi import LstmWeights


class Spinner:
    def __init__(self) -> None:
        self.count = 0
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop:
            self.count += 1

    def __enter__(self) -> Spinner:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop = True
        self.thread.join()


def progress_during(call, spinner: Spinner) -> tuple[int, float]:
    c0, t0 = spinner.count, time.perf_counter()
    call()
    c1, t1 = spinner.count, time.perf_counter()
    return c1 - c0, t1 - t0


def free_rate(spinner: Spinner, seconds: float = 0.15) -> float:
    c0, t0 = spinner.count, time.perf_counter()
    time.sleep(seconds)
    return (spinner.count - c0) / (time.perf_counter() - t0)


@pytest.fixture(scope="module")
def long_call_input(lstm_full):
    w = LstmWeights.from_module(lstm_full.load())
    x = np.random.default_rng(0).standard_normal((8, 4800, 7)).astype(np.float32)
    return w, x


@pytest.mark.parametrize("kind", ["c-release", "c-hold"])
def test_gil_measured(kind, kernels_for, long_call_input):
    k = kernels_for(kind)
    w, x = long_call_input
    old = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    try:
        with Spinner() as spinner:
            rate = free_rate(spinner)
            fractions = []
            for _ in range(2):
                done, elapsed = progress_during(lambda: k.lstm_forward(w, x), spinner)
                fractions.append(done / (rate * elapsed))
            rate_after = free_rate(spinner)
    finally:
        sys.setswitchinterval(old)
    assert rate > 0 and rate_after > 0
    # A busy machine changes the free-running rate: judge each build by the rate that makes its
    # assertion easiest to pass (the two builds still differ by an order of magnitude).
    pick = min if kind == "c-release" else max
    fractions = [f * rate / pick(rate, rate_after) for f in fractions]
    print(kind, "counter progress during the call, as a fraction of free running:", fractions)
    if kind == "c-release":
        assert max(fractions) > 0.10, f"counter stalled during a GIL-releasing call: {fractions}"
    else:
        assert min(fractions) < 0.10, f"counter ran during a GIL-holding call: {fractions}"
        assert elapsed > 0.05  # the call was long enough to be measured
