"""The synthetic ETTh1-shaped series."""

from __future__ import annotations

import numpy as np
import pytest

from servelab.servers.zoo import series


def test_shape_dtype_and_seed() -> None:
    a = series.etth1_like(500, np.random.default_rng(0))
    assert a.shape == (500, 7) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, series.etth1_like(500, np.random.default_rng(0)))
    assert not np.array_equal(a, series.etth1_like(500, np.random.default_rng(1)))
    with pytest.raises(ValueError):
        series.etth1_like(0, np.random.default_rng(0))


def test_daily_seasonality() -> None:
    x = series.etth1_like(24 * 60, np.random.default_rng(0), start=0)[:, 0].astype(np.float64)
    x -= x.mean()

    def autocorr(lag: int) -> float:
        return float(np.dot(x[:-lag], x[lag:]) / np.dot(x, x))

    assert autocorr(24) > 0.3 > autocorr(12)


def test_csv_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = series.write_sample_csv(tmp_path / "etth1_sample.csv", n_steps=48)
    header = path.read_text().splitlines()[0]
    assert header == "date,HUFL,HULL,MUFL,MULL,LUFL,LULL,OT"
    values = series.read_csv(path)
    assert values.shape == (48, 7)
    expected = series.etth1_like(48, np.random.default_rng(0), start=0)
    np.testing.assert_allclose(values, expected, atol=1e-3)
