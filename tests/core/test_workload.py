"""Workload generation: statistics, determinism, phases, validation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from servelab.core.workload import ArrivalSpec, SizeDist, WorkloadSpec


def _spec(arrival: dict, duration: float = 1000.0, **kw) -> WorkloadSpec:
    return WorkloadSpec.from_dict({"duration": duration, "arrival": arrival, **kw})


def test_poisson_rate_within_3_percent_and_exponential_gaps():
    arr = _spec({"kind": "poisson", "rate": 100}, duration=1000).generate()
    assert abs(len(arr) / 1000 - 100) / 100 < 0.03
    gaps = np.diff(arr.times)
    assert stats.kstest(gaps, "expon", args=(0, 1 / 100)).pvalue > 0.001
    assert np.all(gaps >= 0)


def test_constant_rate_is_exact():
    arr = _spec({"kind": "constant", "rate": 50}, duration=10).generate()
    assert len(arr) == 500
    assert np.allclose(np.diff(arr.times), 0.02)


def test_mmpp_mean_rate_and_burstiness():
    spec = _spec(
        {"kind": "mmpp", "rate_high": 200, "rate_low": 20, "mean_high_s": 1, "mean_low_s": 4},
        duration=4000,
    )
    arr = spec.generate()
    assert spec.mean_rate() == pytest.approx(56.0)
    assert abs(len(arr) / 4000 - 56) / 56 < 0.05
    # Burstiness: per-second counts are overdispersed (a Poisson process has index 1).
    counts = np.bincount(arr.times.astype(int), minlength=4000)
    dispersion = counts.var() / counts.mean()
    assert dispersion > 5
    poisson_counts = np.bincount(
        _spec({"kind": "poisson", "rate": 56}, duration=4000).generate().times.astype(int)
    )
    assert poisson_counts.var() / poisson_counts.mean() < 1.2


def test_diurnal_rate_follows_the_sine():
    spec = _spec({"kind": "diurnal", "rate": 100, "period_s": 100, "amplitude": 0.8}, duration=1000)
    t = spec.generate().times
    phase = (t % 100) / 100
    peak = np.sum((phase > 0.15) & (phase < 0.35))  # around sin = 1
    trough = np.sum((phase > 0.65) & (phase < 0.85))  # around sin = -1
    assert peak > 4 * trough
    assert abs(len(t) / 1000 - 100) / 100 < 0.05


def test_trace_replay():
    spec = _spec({"kind": "trace", "times": [0.5, 0.1, 2.0, 9.0]}, duration=3)
    assert spec.generate().times.tolist() == [0.1, 0.5, 2.0]


def test_same_seed_same_arrivals_other_seed_differs():
    spec = _spec({"kind": "poisson", "rate": 50}, duration=100, mix={"a": 1, "b": 2})
    a, b = spec.generate(), spec.generate()
    assert np.array_equal(a.times, b.times) and np.array_equal(a.model_idx, b.model_idx)
    c = spec.with_seed(1).generate()
    assert not np.array_equal(a.times[:10], c.times[:10])


def test_model_mix_proportions():
    spec = _spec(
        {"kind": "poisson", "rate": 1000}, duration=100,
        mix={"mobilenet_v2": 0.6, "distilbert": 0.1, "lstm_forecaster": 0.3},
    )
    arr = spec.generate()
    names = arr.model_names()
    for m, w in spec.mix.items():
        assert abs(np.mean(names == m) - w) < 0.01


def test_default_sizes_imdb_like_text_and_ett_lookbacks():
    spec = _spec(
        {"kind": "poisson", "rate": 1000}, duration=100,
        mix={"mobilenet_v2": 1, "distilbert": 1, "lstm_forecaster": 1},
    )
    arr = spec.generate()
    names = arr.model_names()
    text = arr.input_size[names == "distilbert"]
    assert 165 <= np.median(text) <= 183  # IMDB median ~174 words
    assert text.max() == 512 and text.min() >= 8
    assert set(arr.input_size[names == "mobilenet_v2"]) == {32}
    assert set(arr.input_size[names == "lstm_forecaster"]) <= {96, 192, 336, 720}


def test_phases_switch_at_their_times():
    spec = WorkloadSpec.from_dict({
        "seed": 7,
        "mix": {"fast": 1},
        "phases": [
            {"duration": 50, "arrival": {"kind": "poisson", "rate": 100}},
            {"duration": 50, "arrival": {"kind": "poisson", "rate": 10}, "mix": {"slow": 1}},
        ],
    })
    arr = spec.generate()
    assert spec.total_duration == 100 and spec.phase_starts() == [0.0, 50.0]
    names = arr.model_names()
    assert np.all(names[arr.times < 50] == "fast")
    assert np.all(names[arr.times >= 50] == "slow")
    assert np.all(arr.phase[arr.times >= 50] == 1)
    assert abs(np.sum(arr.times < 50) / 50 - 100) < 10
    assert abs(np.sum(arr.times >= 50) / 50 - 10) < 3


def test_priorities_and_deadlines_become_request_fields():
    spec = _spec(
        {"kind": "constant", "rate": 10}, duration=1, mix={"a": 1},
        priorities={"a": 2}, deadline_ms=250,
    )
    reqs = list(spec.generate().requests())
    assert len(reqs) == 10
    assert all(r.priority == 2 for r in reqs)
    assert all(r.deadline == pytest.approx(r.arrival + 0.25) for r in reqs)
    assert [r.id for r in reqs] == list(range(10))


def test_round_trip_through_dict():
    spec = WorkloadSpec.from_dict({
        "name": "x", "duration": 5, "arrival": {"kind": "mmpp", "rate_high": 5, "rate_low": 1},
        "mix": {"a": 1}, "sizes": {"a": {"kind": "choice", "values": [1, 2]}},
        "phases": [{"duration": 5, "arrival": {"kind": "poisson", "rate": 3}}],
    })
    assert WorkloadSpec.from_dict(spec.to_dict()) == spec


def test_scaled_multiplies_rates():
    spec = _spec({"kind": "poisson", "rate": 10}, duration=10)
    assert spec.scaled(3).mean_rate() == pytest.approx(30)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"arrival": {"kind": "zipf"}}, "unknown arrival kind"),
        ({"arrival": {"kind": "poisson", "rate": -1}}, "rate"),
        ({"arrival": {"kind": "poisson", "rat": 3}}, "unknown field"),
        ({"mix": {"a": -1}}, "mix"),
        ({"sizes": {"a": {"kind": "pareto"}}}, "unknown size kind"),
        ({"duration": 0}, "duration"),
        ({"bogus": 1}, "unknown field"),
    ],
)
def test_bad_specs_raise_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        WorkloadSpec.from_dict(bad)


def test_size_distributions():
    rng = np.random.default_rng(0)
    assert np.all(SizeDist(kind="uniform", low=3, high=5).sample(1000, rng) >= 3)
    ln = SizeDist(kind="lognormal", median=100, sigma=0.5).sample(100_000, rng)
    assert abs(np.median(ln) - 100) <= 2
    assert ArrivalSpec(kind="poisson", rate=5).sample(0, rng).size == 0
