"""The gateway's own measurements, cut into decision windows.

Every request the gateway forwards is timed where the client sees it: from the moment its last
byte reached the gateway to the moment the response was written back.  At the end of each
window the collector turns what happened in it into one :class:`WindowStats`: the reward and
the features are computed by the meta-scheduler's own window code
(:func:`servelab.meta.windows.cut_windows` and :func:`~servelab.meta.windows.normalise`), so the
live reward is the very reward the policies were trained on in simulation (one definition).

Live-only parts: ``cpu`` and ``memory`` are the machine's utilisation (psutil) over the window,
and ``input_scale`` is the window's mean request body size per model over the long-run mean the
gateway has seen for that model (the gateway relays bytes; it does not decode tensors).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import psutil

from servelab.core.bandits.base import Context
from servelab.core.profile import Profile
from servelab.meta.windows import cut_windows, model_class, normalise


@dataclass
class WindowStats:
    """One decision window as the gateway measured it (times in seconds since start)."""

    index: int
    t0: float
    t1: float
    arm: int
    arrivals: int
    completed: int
    errors: int
    offered: float
    throughput: float
    p50_s: float
    p95_s: float
    p99_s: float
    reward: float
    norm: float
    cpu: float
    memory: float
    mix: dict[str, float]
    classes: dict[str, float]
    input_scale: float
    switching: bool = False
    context: Context = field(default_factory=Context)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["context"] = self.context.to_dict()
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in d.items()}


class WindowCollector:
    """Per-request observations in, one :class:`WindowStats` per :meth:`cut` out.

    :meth:`arrived` and :meth:`completed` are called on the event loop for every request (a
    few list appends); :meth:`cut` does the numpy work once per window.
    """

    EMA = 0.05
    """Weight of a window in the long-run mean body size per model (input_scale's base)."""

    def __init__(self, profile: Profile | None = None,
                 clock: Any = time.monotonic) -> None:
        self.profile = profile
        self.clock = clock
        self.t_start = clock()
        self.t_window = 0.0
        self.index = 0
        self._ids = 0
        self._pending: dict[int, tuple[float, str, int]] = {}
        self._done: list[tuple[float, float, str, str, int]] = []
        self._body_mean: dict[str, float] = {}
        self._classes: dict[str, str] = {}
        psutil.cpu_percent(None)  # the first call starts the measurement interval

    def now(self) -> float:
        return self.clock() - self.t_start

    def arrived(self, model: str, nbytes: int) -> int:
        """A request for ``model`` with a body of ``nbytes`` reached the gateway; its id."""
        self._ids += 1
        self._pending[self._ids] = (self.now(), model, nbytes)
        return self._ids

    def completed(self, rid: int, http_status: int) -> float:
        """Request ``rid`` was answered; returns its latency at the gateway (s)."""
        t_arr, model, nbytes = self._pending.pop(rid)
        t = self.now()
        status = "ok" if 200 <= http_status < 300 else "rejected" if http_status == 503 \
            else "error"
        self._done.append((t_arr, t, model, status, nbytes))
        return t - t_arr

    def _class(self, model: str) -> str:
        c = self._classes.get(model)
        if c is None:
            c = self._classes[model] = model_class(model, self.profile)
        return c

    def cut(self, arm: int, switching: bool = False) -> WindowStats:
        """Close the window that began at the previous cut (``arm`` served it; ``switching``:
        a switch was in progress, so the reward belongs to no single arm)."""
        t0, t1 = self.t_window, self.now()
        width = max(t1 - t0, 1e-3)
        done, self._done = self._done, []
        # Every request that completed in the window, and those that arrived in it and wait.
        rows = done + [(t, math.nan, m, "", b) for t, m, b in self._pending.values() if t >= t0]
        frame = pd.DataFrame(rows, columns=["intended_arrival", "end", "model", "status", "bytes"])
        frame["intended_arrival"] -= t0
        frame["end"] -= t0
        frame["start"] = frame["intended_arrival"]
        frame["input_size"] = 1.0
        classes = {m: self._class(m) for m in set(frame["model"])}
        w = cut_windows(frame, width, width, classes=classes).iloc[0]
        lat = np.array([e - a for a, e, _, s, _ in done if s == "ok"])
        arrived = frame[frame["intended_arrival"] >= 0]
        n_arr = len(arrived)
        reward, offered = float(w["reward"]), float(w["offered"])
        cpu = psutil.cpu_percent(None) / 100.0
        memory = psutil.virtual_memory().percent / 100.0
        p95 = float(w["p95_s"])
        p99 = float(w["p99_s"])
        shares = {c: float(w[c]) if n_arr else 0.0 for c in ("fast", "medium", "slow")}
        scale = self._input_scale(arrived)
        stats = WindowStats(
            index=self.index, t0=t0, t1=t1, arm=arm, arrivals=n_arr, completed=len(done),
            errors=sum(1 for d in done if d[3] == "error"), offered=offered,
            throughput=float(w["throughput"]),
            p50_s=float(np.median(lat)) if lat.size else math.nan, p95_s=p95, p99_s=p99,
            reward=reward,
            norm=float(normalise(np.array([reward]), np.array([offered]), width)[0]),
            cpu=cpu, memory=memory,
            mix={m: c / n_arr for m, c in Counter(arrived["model"]).items()},
            classes=shares, input_scale=scale, switching=switching,
            context=Context(
                rate=offered, fast=shares["fast"] if n_arr else 1.0, medium=shares["medium"],
                slow=shares["slow"], cpu=cpu, memory=memory,
                p95_s=p95 if math.isfinite(p95) else 0.0,
                p99_s=p99 if math.isfinite(p99) else 0.0, input_scale=scale,
            ),
        )
        self.t_window = t1
        self.index += 1
        return stats

    def _input_scale(self, arrived: pd.DataFrame) -> float:
        """Mean body size of the window's arrivals, each over its model's long-run mean
        (1.0 when nothing arrived); the long-run means then take this window in."""
        if arrived.empty:
            return 1.0
        total = 0.0
        for model, sizes in arrived.groupby("model")["bytes"]:
            mean = float(sizes.mean())
            base = self._body_mean.setdefault(str(model), mean)
            total += len(sizes) * (mean / base if base > 0 else 1.0)
            self._body_mean[str(model)] = (1 - self.EMA) * base + self.EMA * mean
        return total / len(arrived)
