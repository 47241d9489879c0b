"""The speed probe: a short fixed measurement of how fast this machine is right now.

Per model, batch-1 inference at its default size back to back (one intra-op thread, the
median of at least ``samples`` calls and ``min_time_s`` of them); and ``python``, a
pure-Python loop of the kind of work a server's front end does (JSON of an OIP-sized body,
dict and string churn).  :class:`Prober` measures in this process; :class:`SpeedProbe` keeps
one in a child process (models loaded once) so that a validation can probe before every point
for well under a second; ``calibrate``'s ``speed`` bench (:mod:`.benches.speed`) takes the
same measurement in its own worker.  What the ratios are used for: :mod:`servelab.core.speed`.
"""

from __future__ import annotations

import functools
import json
import multiprocessing as mp
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from servelab.core.speed import PYTHON, Speed

MIN_TIME_S = 0.12
SAMPLES = 5
WARMUPS = 2


def _python_work() -> None:
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 32, 32],
                        "data": [i * 0.001 for i in range(3072)]}]}
    text = json.dumps(body)
    d = json.loads(text)
    out = {f"k{i}": str(v)[:6] for i, v in enumerate(d["inputs"][0]["data"][:512])}
    json.dumps(out)


def _timed(fn: Callable[[], Any], warmups: int, samples: int, min_time: float) -> float:
    for _ in range(warmups):
        fn()
    ts: list[float] = []
    end = time.perf_counter() + min_time
    while len(ts) < samples or (time.perf_counter() < end and len(ts) < 2000):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


class Prober:
    """The probe in this process (loads ``models`` once; needs torch)."""

    def __init__(self, models: Sequence[str], variant: str = "full") -> None:
        import numpy as np
        import torch

        from servelab.servers.zoo import get_model

        torch.set_num_threads(1)
        rng = np.random.default_rng(0)
        self.calls: dict[str, Callable[[], Any]] = {}
        for name in models:
            model = get_model(name, variant=variant)
            model.load()
            inputs = [model.make_input(model.default_size, rng)]
            self.calls[name] = functools.partial(model.infer, inputs)
        self.calls[PYTHON] = _python_work

    def measure(self, warmups: int = WARMUPS, samples: int = SAMPLES,
                min_time_s: float = MIN_TIME_S) -> Speed:
        return Speed({k: _timed(f, warmups, samples, min_time_s) for k, f in self.calls.items()},
                     at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S%z"))


def _child(conn: Any, models: list[str], variant: str) -> None:
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        prober = Prober(models, variant)
        prober.measure()  # the warm-up pass (calibrate's speed bench takes one too)
        conn.send(("ready", None))
    except BaseException as exc:  # report, do not hang the parent
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    while True:
        msg = conn.recv()
        if msg is None:
            return
        conn.send(("speed", prober.measure().to_dict()))


class SpeedProbe:
    """A :class:`Prober` in a child process: ``with SpeedProbe(models) as p: p.measure()``.

    The child only runs while :meth:`measure` waits for it, so between probes it costs the
    machine nothing but its memory (one copy of each model)."""

    def __init__(self, models: Sequence[str], variant: str = "full",
                 start_timeout_s: float = 120.0) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_child, args=(child, list(models), variant), daemon=True,
                                 name="servelab-speed-probe")
        self._proc.start()
        child.close()
        self._recv(start_timeout_s, "ready")

    def _recv(self, timeout: float, want: str) -> Any:
        if not self._conn.poll(timeout):
            self.close()
            raise TimeoutError(f"speed probe: no answer in {timeout:.0f}s")
        kind, value = self._conn.recv()
        if kind != want:
            self.close()
            raise RuntimeError(f"speed probe failed: {value}")
        return value

    def measure(self, timeout_s: float = 60.0) -> Speed:
        self._conn.send("go")
        return Speed.from_dict(self._recv(timeout_s, "speed"))

    def close(self) -> None:
        if self._proc.is_alive():
            try:
                self._conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            self._proc.join(5)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(5)
        self._conn.close()

    def __enter__(self) -> SpeedProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
