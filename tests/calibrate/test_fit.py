from __future__ import annotations

import numpy as np
import pytest

from servelab.calibrate.fit import (
    amdahl_speedup,
    gil_share,
    linear_fit,
    slowdown_curve,
    summarize,
)


def test_linear_fit_recovers_known_parameters():
    rng = np.random.default_rng(0)
    x = rng.integers(8, 512, 400)
    y = 0.02 + 0.0014 * x + rng.normal(0, 0.002, x.size)
    f = linear_fit(x, y)
    assert f.fixed == pytest.approx(0.02, abs=0.001)
    assert f.per_unit == pytest.approx(0.0014, rel=0.02)
    assert f.r2 > 0.99 and f.n == 400


def test_linear_fit_never_returns_negative_costs():
    f = linear_fit([1, 2, 3], [3.0, 2.0, 1.0])
    assert f.per_unit == 0.0 and f.fixed == pytest.approx(2.0)
    g = linear_fit([10, 20, 30], [0.5, 1.5, 2.5])  # would extrapolate to a negative intercept
    assert g.fixed == 0.0 and g.per_unit > 0
    assert linear_fit([5, 5], [1.0, 3.0]).fixed == 2.0
    with pytest.raises(ValueError):
        linear_fit([], [])


def test_slowdown_curve():
    k = [1, 1, 2, 2, 4, 4]
    t = [1.0, 1.0, 1.1, 1.1, 2.2, 2.2]
    assert slowdown_curve(k, t) == pytest.approx({1: 1.0, 2: 1.1, 4: 2.2})
    with pytest.raises(ValueError):
        slowdown_curve([2], [1.0])


@pytest.mark.parametrize("g", [0.0, 0.1, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("cores", [2, 8])
def test_gil_share_recovers_known_share(g, cores):
    hardware = 0.9 * cores  # processes scale imperfectly; that must not be blamed on the GIL
    threads = hardware * amdahl_speedup(g, cores) / cores
    assert gil_share(threads, hardware, k=cores, cores=cores) == pytest.approx(g, abs=1e-9)


def test_gil_share_undefined_on_one_core():
    assert np.isnan(gil_share(1.0, 1.0, k=4, cores=1))


def test_summarize():
    s = summarize([1.0, 2.0, 3.0, 4.0])
    assert s["mean"] == 2.5 and s["median"] == 2.5 and s["n"] == 4
    assert s["cv"] == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2.5)
