"""Fits that turn raw calibration samples into the simulator's parameters.

Each fit is a small pure function with a known-parameter test: a linear cost model
(fixed + per-unit, for service time vs input size and IPC cost vs payload bytes), a slowdown
curve (service time when k requests run at once, relative to one), and the GIL share derived
from thread-versus-process scaling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LinearFit:
    """y = fixed + per_unit * x, fitted by least squares."""

    fixed: float
    per_unit: float
    r2: float
    n: int

    def __call__(self, x: float | np.ndarray) -> float | np.ndarray:
        return self.fixed + self.per_unit * np.asarray(x)

    def to_dict(self) -> dict[str, float]:
        return {"fixed": self.fixed, "per_unit": self.per_unit, "r2": self.r2, "n": self.n}


def linear_fit(x: Sequence[float], y: Sequence[float], nonneg: bool = True) -> LinearFit:
    """Least-squares line through (x, y); with ``nonneg`` both coefficients are clipped at 0
    (costs are never negative) and the other refitted."""
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xa.size != ya.size or xa.size == 0:
        raise ValueError("linear_fit needs equally long, non-empty x and y")
    if np.ptp(xa) == 0:
        fixed, slope = float(ya.mean()), 0.0
    else:
        slope, fixed = (float(v) for v in np.polyfit(xa, ya, 1))
        if nonneg and slope < 0:
            fixed, slope = float(ya.mean()), 0.0
        if nonneg and fixed < 0:
            fixed, slope = 0.0, float(np.dot(xa, ya) / np.dot(xa, xa))
    resid = ya - (fixed + slope * xa)
    ss = float(np.sum((ya - ya.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss if ss > 0 else 1.0
    return LinearFit(fixed, slope, r2, int(xa.size))


def slowdown_curve(k: Sequence[int], per_request_time: Sequence[float]) -> dict[int, float]:
    """Per-request time with k concurrent requests, relative to k = 1 (median per k)."""
    ka, ta = np.asarray(k), np.asarray(per_request_time, dtype=float)
    if 1 not in set(ka.tolist()):
        raise ValueError("slowdown_curve needs measurements at k = 1")
    base = float(np.median(ta[ka == 1]))
    return {int(v): float(np.median(ta[ka == v]) / base) for v in sorted(set(ka.tolist()))}


def gil_share(
    speedup_threads: float, speedup_processes: float, k: int, cores: int
) -> float:
    """The fraction of a request's time spent holding the GIL, from throughput speedups.

    Model: with ``k`` request-level workers on ``cores`` cores, processes show the hardware's
    own scaling ``speedup_processes``; threads are additionally serialised on the GIL for a
    fraction ``g`` of each request.  Relative to processes, the thread pool then behaves like
    Amdahl's law with ``n = min(k, cores)`` parallel units:
    ``speedup_threads / speedup_processes = (1 / (g + (1 - g) / n)) / n``.
    Solving for ``g`` gives the estimate, clipped to [0, 1].  Its error comes from the two
    speedups' errors; with ``n = 1`` (one core) the GIL is invisible and NaN is returned.
    """
    n = min(k, cores)
    if n <= 1:
        return float("nan")
    rel = speedup_threads / speedup_processes  # in (1/n, 1]
    s = rel * n  # the Amdahl speedup of the thread pool over one thread, hardware removed
    g = (1.0 / s - 1.0 / n) / (1.0 - 1.0 / n)
    return float(np.clip(g, 0.0, 1.0))


def amdahl_speedup(g: float, n: int) -> float:
    """The inverse of :func:`gil_share` (for tests and the simulator)."""
    return 1.0 / (g + (1.0 - g) / n)


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """Mean, median, quantiles and coefficient of variation of a sample."""
    a = np.asarray(samples, dtype=float)
    if a.size == 0:
        raise ValueError("no samples")
    mean = float(a.mean())
    return {
        "mean": mean, "median": float(np.median(a)), "p05": float(np.percentile(a, 5)),
        "p95": float(np.percentile(a, 95)), "p99": float(np.percentile(a, 99)),
        "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
        "cv": float(a.std(ddof=1) / mean) if a.size > 1 and mean > 0 else 0.0,
        "n": int(a.size),
    }


@dataclass(frozen=True)
class GilFit:
    """GIL shares per model and the contention overhead, fitted to co-run progress rates."""

    shares: dict[str, float]
    overhead: float
    residuals: list[dict[str, float | str]]
    rmse: float


def fit_gil(observations: Sequence[tuple[str, str, float, float]], cores: int) -> GilFit:
    """Least-squares fit of :mod:`servelab.core.gil`'s model to co-run rates.

    Each observation is ``(model_a, model_b, rate_a, rate_b)``: two threads of one interpreter
    side by side.  The unknowns are one GIL share per model (in [0, 1]) and one contention
    overhead (>= 0); every observed rate is one residual, so the fit says how well one share
    per model explains every pairing.
    """
    from scipy.optimize import least_squares

    from servelab.core.gil import pair_rates

    names = sorted({m for a, b, _, _ in observations for m in (a, b)})
    if not names:
        raise ValueError("fit_gil needs at least one co-run observation")
    index = {m: i for i, m in enumerate(names)}

    def predict(x: np.ndarray) -> list[tuple[float, float]]:
        return [pair_rates(x[index[a]], x[index[b]], x[-1], cores) for a, b, _, _ in observations]

    def resid(x: np.ndarray) -> np.ndarray:
        out = []
        for (_, _, ra, rb), (pa, pb) in zip(observations, predict(x), strict=True):
            out += [pa - ra, pb - rb]
        return np.asarray(out)

    best = None
    for g0 in (0.2, 0.6, 0.95):  # a few starts: the share of a model seen alone is flat-ish
        x0 = np.array([g0] * len(names) + [0.05])
        res = least_squares(resid, x0, bounds=([0.0] * len(names) + [0.0],
                                               [1.0] * len(names) + [2.0]))
        if best is None or res.cost < best.cost:
            best = res
    assert best is not None
    x = best.x
    rows: list[dict[str, float | str]] = []
    for (a, b, ra, rb), (pa, pb) in zip(observations, predict(x), strict=True):
        rows.append({"a": a, "b": b, "rate_a": ra, "rate_b": rb, "fit_a": pa, "fit_b": pb})
    r = resid(x)
    return GilFit(
        shares={m: float(x[index[m]]) for m in names}, overhead=float(x[-1]),
        residuals=rows, rmse=float(np.sqrt(np.mean(r**2))),
    )
