"""A workload's features: what a client or a gateway knows about the traffic, not the server.

Per workload (phases weighted by their length): the mean request ``rate``; each model's share
of the requests (``share_<model>``) and mean input size (``size_<model>``: DistilBERT words, LSTM
look-back steps; 0 where the model is absent; models without a size dimension — MobileNetV2's
fixed CIFAR image — get none); ``burst``, the arrival process's peak rate over its mean (1 for
Poisson); ``service_s``, the mean CPU per request alone at batch 1 from the profile (seconds;
rules and labels show it in ms); and
``cpu_load``, the offered CPU load: rate x mean service time / cores (1 = every core busy with
inference alone).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from servelab.core.profile import Profile
from servelab.core.workload import ArrivalSpec, SizeDist, WorkloadSpec

_SAMPLES = 4000


def _sizes(d: SizeDist) -> np.ndarray:
    return np.asarray(d.sample(_SAMPLES, np.random.default_rng(0)), dtype=float)


def mean_size(d: SizeDist) -> float:
    """The mean of a size distribution (clipping included), from a fixed-seed sample."""
    return float(_sizes(d).mean())


def sized_models(profile: Profile, models: Sequence[str]) -> list[str]:
    """The models whose input size varies (a size feature each)."""
    from servelab.core.workload import DEFAULT_SIZES

    return [m for m in models if m in DEFAULT_SIZES and DEFAULT_SIZES[m].kind != "fixed"]


def feature_names(profile: Profile, models: Sequence[str]) -> list[str]:
    return (["rate", "cpu_load", "service_s", "burst"] + [f"share_{m}" for m in models]
            + [f"size_{m}" for m in sized_models(profile, models)])


def burst(arrival: ArrivalSpec) -> float:
    """Peak over mean rate of an arrival process."""
    mean = arrival.mean_rate
    if arrival.kind == "mmpp" and mean > 0:
        return max(arrival.rate_high, arrival.rate_low) / mean
    if arrival.kind == "diurnal":
        return 1.0 + arrival.amplitude
    return 1.0


def workload_features(spec: WorkloadSpec, profile: Profile,
                      models: Sequence[str]) -> dict[str, float]:
    """The features of ``spec`` (see the module docstring) over the feature ``models``."""
    phases = spec.effective_phases()
    total = sum(p.duration for p in phases)
    rate = spec.mean_rate()
    share = dict.fromkeys(models, 0.0)
    size_sum = dict.fromkeys(models, 0.0)
    cpu = 0.0  # CPU seconds offered per second
    peak = 0.0
    for p in phases:
        mix = dict(p.mix or {})
        wsum = sum(mix.values()) or 1.0
        n = p.arrival.mean_rate * p.duration  # requests in the phase
        peak = max(peak, burst(p.arrival) * p.arrival.mean_rate)
        for m, w in mix.items():
            k = n * w / wsum
            sizes = _sizes((p.sizes or {})[m])
            if m in share:
                share[m] += k
                size_sum[m] += k * float(sizes.mean())
            if m in profile.models:
                model = profile.model(m)
                vals, counts = np.unique(sizes, return_counts=True)
                cost = [model.mean_service(float(v)) for v in vals]
                cpu += k * float(np.average(cost, weights=counts))
    n_all = rate * total
    out: dict[str, float] = {
        "rate": rate,
        "cpu_load": cpu / total / profile.machine.cores,
        "service_s": cpu / n_all if n_all > 0 else 0.0,
        "burst": peak / rate if rate > 0 else 1.0,
    }
    for m in models:
        out[f"share_{m}"] = share[m] / n_all if n_all > 0 else 0.0
    for m in sized_models(profile, models):
        out[f"size_{m}"] = size_sum[m] / share[m] if share[m] > 0 else 0.0
    return out


def features_frame(specs: Sequence[WorkloadSpec], profile: Profile,
                   models: Sequence[str]) -> pd.DataFrame:
    """One row per workload (``workload``: its name), the feature columns in
    :func:`feature_names` order."""
    rows: list[dict[str, Any]] = [{"workload": s.name, **workload_features(s, profile, models)}
                                  for s in specs]
    return pd.DataFrame(rows, columns=["workload", *feature_names(profile, models)])


LABELS: dict[str, str] = {
    "rate": "arrival rate (req/s)",
    "cpu_load": "offered CPU load (share of the cores)",
    "service_s": "mean CPU per request (ms)",
    "burst": "burst peak / mean rate",
}
SHOWN_SCALE: dict[str, float] = {"service_s": 1e3}
"""Features a person reads in another unit than the data's: the factor to their label's unit
(``service_s`` is stored in seconds, shown in ms)."""
FEATURES_VERSION = 2
"""The feature columns' format: 2 has ``service_s`` (version 1 had ``service_ms``); part of a
cached training set's key."""


def shown(name: str, value: float) -> float:
    """A value of feature ``name`` in the unit its :func:`label` names."""
    return value * SHOWN_SCALE.get(name, 1.0)


def label(name: str) -> str:
    """A feature's name for people: ``share_distilbert`` -> ``distilbert share of requests``."""
    if name in LABELS:
        return LABELS[name]
    if name.startswith("share_"):
        return f"{name[6:]} share of requests"
    if name.startswith("size_"):
        unit = {"distilbert": "words", "lstm_forecaster": "look-back steps"}.get(name[5:], "units")
        return f"mean {name[5:]} input ({unit})"
    return name
