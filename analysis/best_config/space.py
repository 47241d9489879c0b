"""What is compared and what it is trained on: the configurations and the random workloads.

A configuration is named by its **key**, ``<setup>-w<workers>-<scheduler>`` (``threads-w2-fifo``,
``async-inline-w2-fifo``) — the same key ``servelab validate`` gives its cells, so live points
match simulated ones whatever models a server loaded.  The default set is the meta-scheduler's
arm space (:data:`servelab.meta.arms.DEFAULT_SPACE`) under FIFO, plus the two configurations the
fidelity grid also measures live: one thread, and asyncio running inference inline on its loop.

A training workload (:func:`draw_workloads`) is one phase: a model mix (one model, or Dirichlet
shares over two or three), per-model input-size scales, Poisson or bursty (MMPP) arrivals, and a
mean rate drawn as a share of the mix's estimated capacity, so that every mix is seen from
idle to overloaded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from servelab.analysis.best_config.features import mean_size
from servelab.core.config import ServerConfig
from servelab.core.profile import Profile
from servelab.core.profile_parts import setup_name
from servelab.core.workload import DEFAULT_SIZES, ArrivalSpec, SizeDist, WorkloadSpec
from servelab.meta.arms import DEFAULT_SPACE, product
from servelab.meta.train import capacity, random_mix, scaled_size

EXTRA_SPACE: tuple[dict[str, Any], ...] = (
    {"concurrency": ["threads"], "workers": [1]},
    {"concurrency": ["async"], "offload": ["inline"], "workers": [2]},
)
"""Beyond the arms: the configurations the fidelity grid measures live that the arms lack."""

SETUP_ORDER = ("threads", "processes", "async-inline", "async-thread", "async-process")


def config_key(config: ServerConfig) -> str:
    """``threads-w2-fifo``: setup, pool size and scheduler (validate's cell key)."""
    return f"{setup_name(config.concurrency, config.offload)}-w{config.workers}-{config.scheduler}"


def setup_of(key: str) -> str:
    """The setup of a key: ``async-inline-w2-fifo`` -> ``async-inline``."""
    return key.rsplit("-", 2)[0]


def default_configs(schedulers: Sequence[str] = ("fifo",),
                    models: Sequence[str] | None = None) -> list[ServerConfig]:
    """The arm space (and :data:`EXTRA_SPACE`) under ``schedulers``, one per key, ordered by
    setup then pool size."""
    base = ServerConfig() if models is None else ServerConfig(models=tuple(models))
    out: dict[str, ServerConfig] = {}
    for spec in (*DEFAULT_SPACE, *EXTRA_SPACE):
        for cfg in product({**spec, "scheduler": list(schedulers)}, base):
            out.setdefault(config_key(cfg), cfg)
    return sorted(out.values(), key=lambda c: (SETUP_ORDER.index(setup_name(
        c.concurrency, c.offload)), c.workers, list(schedulers).index(c.scheduler)))


@dataclass(frozen=True)
class Draw:
    """What a training workload is drawn from (uniform unless said otherwise)."""

    load: tuple[float, float] = (0.1, 1.5)
    """Mean rate over the mix's estimated capacity (``meta.train.capacity``), log-uniform."""
    single_model: float = 0.35
    """Chance that a workload serves one model only."""
    mix_alpha: float = 0.7
    size_scale: tuple[float, float] = (0.5, 2.0)
    """Each model's input sizes (DistilBERT words, LSTM look-back) times this, log-uniform."""
    bursty: float = 0.4
    """Chance of bursty (MMPP) arrivals instead of Poisson."""
    burst: tuple[float, float] = (1.5, 4.0)
    """Bursty: the high state's rate over the mean (high 1 s, low 4 s on average)."""
    requests: int = 300
    """Measured requests a workload aims at: its measured seconds are ``requests / rate``,
    clipped to ``duration_s`` (a simulation's cost grows with its requests; a p99 needs a few
    hundred)."""
    duration_s: tuple[float, float] = (5.0, 30.0)
    """The measured seconds' bounds, after ``warmup_s``."""
    warmup_s: float = 2.0
    overhead: float = 2.0
    """Capacity estimate: cores / (mean service time x this)."""


HIGH_S, LOW_S = 1.0, 4.0
"""Mean sojourns of the bursty arrivals' high and low states."""


def bursty_arrival(rate: float, burst: float) -> ArrivalSpec:
    """MMPP arrivals of mean ``rate`` whose high state runs at ``burst`` x the mean."""
    share_high = HIGH_S / (HIGH_S + LOW_S)
    burst = min(burst, 0.95 / share_high)
    low = rate * (1 - share_high * burst) / (1 - share_high)
    return ArrivalSpec(kind="mmpp", rate=rate, rate_high=rate * burst, rate_low=low,
                       mean_high_s=HIGH_S, mean_low_s=LOW_S)


def random_workload(rng: np.random.Generator, profile: Profile, draw: Draw, name: str,
                    models: Sequence[str]) -> WorkloadSpec:
    mix = random_mix(rng, models, draw.single_model, draw.mix_alpha)
    sizes: dict[str, SizeDist] = {}
    for m in mix:
        d = scaled_size(m, float(np.exp(rng.uniform(*np.log(draw.size_scale)))))
        if d is not None:
            sizes[m] = d
    load = float(np.exp(rng.uniform(*np.log(draw.load))))
    cap = _capacity(profile, mix, sizes, draw.overhead)
    rate = round(max(load * cap, 0.5), 2)
    arrival = (bursty_arrival(rate, float(np.exp(rng.uniform(*np.log(draw.burst)))))
               if rng.random() < draw.bursty else ArrivalSpec(kind="poisson", rate=rate))
    measured = float(np.clip(draw.requests / rate, *draw.duration_s))
    return WorkloadSpec(
        name=name, duration=round(measured, 1) + draw.warmup_s, arrival=arrival, mix=mix,
        sizes=sizes, warmup_s=draw.warmup_s, seed=int(rng.integers(1, 2**31 - 1)),
        description=f"servelab best-config training workload (load {load:.2f} of the "
        "estimated capacity)",
    )


def _capacity(profile: Profile, mix: Mapping[str, float], sizes: Mapping[str, SizeDist],
              overhead: float) -> float:
    """``meta.train.capacity`` of the mix at its drawn sizes (a mean scale over its models)."""
    scales = []
    for m in mix:
        d = DEFAULT_SIZES.get(m)
        if m in sizes and d is not None:
            scales.append(mean_size(sizes[m]) / max(mean_size(d), 1e-9))
    return capacity(profile, mix, float(np.mean(scales)) if scales else 1.0, overhead)


def draw_workloads(n: int, profile: Profile, seed: int = 0, draw: Draw | None = None,
                   models: Sequence[str] | None = None) -> list[WorkloadSpec]:
    """``n`` training workloads over ``models`` (default: every model of the profile's that has
    no kernel suffix), deterministic in ``seed``."""
    if n < 1:
        raise ValueError("draw at least one workload")
    draw = draw if draw is not None else Draw()
    models = list(models) if models is not None else [m for m in profile.models if "+" not in m]
    missing = [m for m in models if m not in profile.models]
    if missing or not models:
        raise ValueError(f"models {missing or models} not in the profile ({', '.join(profile.models)})")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xBE57]))
    return [random_workload(rng, profile, draw, f"bc-s{seed}-{i:04d}", models) for i in range(n)]
