"""Workloads: arrival processes, model mix, input-size distributions and phases.

A :class:`WorkloadSpec` drives both the live load generator and the simulator.  It is plain
data (built from a dict, e.g. parsed YAML/JSON) and :meth:`WorkloadSpec.generate` turns it into
:class:`Arrivals` — columns of arrival times, models, input sizes, priorities and deadlines —
deterministically from the seed and vectorized (a million arrivals in well under a second).

Arrival kinds (``arrival.kind``):

* ``constant`` — one request every ``1/rate`` seconds;
* ``poisson`` — exponential inter-arrivals at ``rate`` per second;
* ``mmpp`` — a bursty two-state Markov-modulated Poisson process: ``rate_high`` for
  exponentially distributed periods of mean ``mean_high_s``, then ``rate_low`` for periods of
  mean ``mean_low_s`` (its mean rate is the time-weighted average);
* ``diurnal`` — Poisson with rate ``rate * (1 + amplitude * sin(2 pi t / period_s))``;
* ``trace`` — replay of explicit arrival offsets ``times`` (seconds), cut to the phase.

Input-size kinds (``sizes.<model>.kind``): ``fixed`` (``value``), ``lognormal`` (``median``,
``sigma``, clipped to [``min``, ``max``]), ``choice`` (``values``, optional ``weights``) and
``uniform`` (integers in [``low``, ``high``]).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from servelab.core.requests import Request

ARRIVAL_KINDS = ("constant", "poisson", "mmpp", "diurnal", "trace")
SIZE_KINDS = ("fixed", "lognormal", "choice", "uniform")


def _check_keys(where: str, data: Mapping[str, Any], allowed: Sequence[str]) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; valid: {sorted(allowed)}")


@dataclass(frozen=True)
class ArrivalSpec:
    kind: str = "poisson"
    rate: float = 10.0
    rate_high: float = 0.0
    rate_low: float = 0.0
    mean_high_s: float = 1.0
    mean_low_s: float = 1.0
    period_s: float = 86400.0
    amplitude: float = 0.5
    times: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ARRIVAL_KINDS:
            raise ValueError(f"unknown arrival kind {self.kind!r}; valid: {', '.join(ARRIVAL_KINDS)}")
        if self.kind in ("constant", "poisson", "diurnal") and not self.rate > 0:
            raise ValueError(f"arrival rate must be > 0, got {self.rate}")
        if self.kind == "mmpp":
            if self.rate_high < 0 or self.rate_low < 0 or self.rate_high + self.rate_low <= 0:
                raise ValueError("mmpp needs rate_high, rate_low >= 0, not both 0")
            if self.mean_high_s <= 0 or self.mean_low_s <= 0:
                raise ValueError("mmpp needs mean_high_s and mean_low_s > 0")
        if self.kind == "diurnal" and not 0 <= self.amplitude <= 1:
            raise ValueError(f"diurnal amplitude must be in [0, 1], got {self.amplitude}")
        if self.kind == "trace" and any(t < 0 for t in self.times):
            raise ValueError("trace times must be >= 0")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArrivalSpec:
        _check_keys("arrival", data, [f.name for f in fields(cls)])
        d = dict(data)
        if "times" in d:
            d["times"] = tuple(sorted(float(t) for t in d["times"]))
        return cls(**d)

    @property
    def mean_rate(self) -> float:
        """Long-run mean arrival rate (requests per second)."""
        if self.kind == "mmpp":
            w = self.mean_high_s + self.mean_low_s
            return (self.rate_high * self.mean_high_s + self.rate_low * self.mean_low_s) / w
        return self.rate

    def scaled(self, factor: float) -> ArrivalSpec:
        """The same process with every rate multiplied by ``factor`` (traces are time-compressed)."""
        if self.kind == "trace":
            return replace(self, times=tuple(t / factor for t in self.times))
        return replace(
            self, rate=self.rate * factor, rate_high=self.rate_high * factor,
            rate_low=self.rate_low * factor,
        )

    def sample(self, duration: float, rng: np.random.Generator) -> np.ndarray:
        """Sorted arrival offsets in [0, duration)."""
        if duration <= 0:
            return np.empty(0)
        if self.kind == "constant":
            return np.arange(0.0, duration, 1.0 / self.rate)
        if self.kind == "poisson":
            return _poisson_times(self.rate, duration, rng)
        if self.kind == "diurnal":
            peak = self.rate * (1 + self.amplitude)
            t = _poisson_times(peak, duration, rng)
            keep = rng.random(t.size) * peak < self.rate * (
                1 + self.amplitude * np.sin(2 * np.pi * t / self.period_s)
            )
            return t[keep]
        if self.kind == "mmpp":
            return self._sample_mmpp(duration, rng)
        times = np.asarray(self.times, dtype=float)
        return times[times < duration]

    def _sample_mmpp(self, duration: float, rng: np.random.Generator) -> np.ndarray:
        # Alternate high/low sojourns (starting in a state drawn from the stationary split),
        # then scatter a Poisson count uniformly inside each sojourn.
        mean_cycle = self.mean_high_s + self.mean_low_s
        n_cycles = int(duration / mean_cycle * 1.5) + 8
        start_high = rng.random() < self.mean_high_s / mean_cycle
        while True:
            means = np.empty(2 * n_cycles)
            first, second = (
                (self.mean_high_s, self.mean_low_s) if start_high else (self.mean_low_s, self.mean_high_s)
            )
            means[0::2], means[1::2] = first, second
            lengths = rng.exponential(means)
            if lengths.sum() >= duration:
                break
            n_cycles *= 2
        starts = np.concatenate(([0.0], np.cumsum(lengths)[:-1]))
        keep = starts < duration
        starts, lengths = starts[keep], lengths[keep]
        lengths = np.minimum(lengths, duration - starts)
        high = np.arange(starts.size) % 2 == (0 if start_high else 1)
        rates = np.where(high, self.rate_high, self.rate_low)
        counts = rng.poisson(rates * lengths)
        t = np.repeat(starts, counts) + rng.random(counts.sum()) * np.repeat(lengths, counts)
        t.sort()
        return t


def _poisson_times(rate: float, duration: float, rng: np.random.Generator) -> np.ndarray:
    # Given N ~ Poisson(rate * T), the N arrival times are i.i.d. uniform on [0, T): exact,
    # and vectorized.
    n = rng.poisson(rate * duration)
    t = rng.random(n) * duration
    t.sort()
    return t


@dataclass(frozen=True)
class SizeDist:
    kind: str = "fixed"
    value: int = 1
    median: float = 1.0
    sigma: float = 0.0
    min: int = 1
    max: int = 2**31 - 1
    values: tuple[int, ...] = ()
    weights: tuple[float, ...] = ()
    low: int = 1
    high: int = 1

    def __post_init__(self) -> None:
        if self.kind not in SIZE_KINDS:
            raise ValueError(f"unknown size kind {self.kind!r}; valid: {', '.join(SIZE_KINDS)}")
        if self.kind == "choice":
            if not self.values:
                raise ValueError("size kind 'choice' needs values")
            if self.weights and len(self.weights) != len(self.values):
                raise ValueError("size 'choice': weights and values differ in length")
        if self.kind == "lognormal" and (self.median <= 0 or self.sigma < 0):
            raise ValueError("size 'lognormal' needs median > 0 and sigma >= 0")
        if self.kind == "uniform" and self.low > self.high:
            raise ValueError("size 'uniform' needs low <= high")
        if self.min > self.max:
            raise ValueError("size needs min <= max")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SizeDist:
        _check_keys("size", data, [f.name for f in fields(cls)])
        d = dict(data)
        for k in ("values", "weights"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.kind == "fixed":
            out = np.full(n, self.value, dtype=np.int64)
        elif self.kind == "lognormal":
            out = np.rint(self.median * np.exp(self.sigma * rng.standard_normal(n))).astype(np.int64)
        elif self.kind == "choice":
            w = np.asarray(self.weights or [1.0] * len(self.values), dtype=float)
            out = rng.choice(np.asarray(self.values, dtype=np.int64), size=n, p=w / w.sum())
        else:
            out = rng.integers(self.low, self.high, size=n, endpoint=True)
        return np.clip(out, self.min, self.max)


DEFAULT_SIZES: dict[str, SizeDist] = {
    # CIFAR-10 images are always 32x32.
    "mobilenet_v2": SizeDist(kind="fixed", value=32),
    # IMDB-like review lengths in words: log-normal, median 174, long tail clipped at the
    # 512-token limit (sigma 0.75 gives the IMDB mean of about 230 words).
    "distilbert": SizeDist(kind="lognormal", median=174, sigma=0.75, min=8, max=512),
    # The usual ETTh1 look-back windows.
    "lstm_forecaster": SizeDist(kind="choice", values=(96, 192, 336, 720), weights=(0.4, 0.3, 0.2, 0.1)),
}


@dataclass(frozen=True)
class Phase:
    """A stretch of the workload with its own arrival process and, optionally, mix and sizes."""

    duration: float
    arrival: ArrivalSpec
    mix: Mapping[str, float] | None = None
    sizes: Mapping[str, SizeDist] | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Phase:
        _check_keys("phase", data, ["duration", "arrival", "mix", "sizes"])
        if "duration" not in data or "arrival" not in data:
            raise ValueError("each phase needs 'duration' and 'arrival'")
        return cls(
            duration=float(data["duration"]),
            arrival=ArrivalSpec.from_dict(data["arrival"]),
            mix=_parse_mix(data["mix"]) if data.get("mix") is not None else None,
            sizes=_parse_sizes(data["sizes"]) if data.get("sizes") is not None else None,
        )


def _parse_mix(mix: Mapping[str, float] | Sequence[str] | str) -> dict[str, float]:
    if isinstance(mix, str):
        mix = {mix: 1.0}
    elif not isinstance(mix, Mapping):
        mix = {m: 1.0 for m in mix}
    out = {str(k): float(v) for k, v in mix.items()}
    if not out or any(v < 0 for v in out.values()) or sum(out.values()) <= 0:
        raise ValueError(f"model mix needs non-negative weights with a positive sum, got {out}")
    return out


def _parse_sizes(sizes: Mapping[str, Any]) -> dict[str, SizeDist]:
    return {str(m): d if isinstance(d, SizeDist) else SizeDist.from_dict(d) for m, d in sizes.items()}


@dataclass(frozen=True)
class Arrivals:
    """A generated workload as columns (one row per request, sorted by time)."""

    times: np.ndarray
    model_idx: np.ndarray
    models: tuple[str, ...]
    input_size: np.ndarray
    priority: np.ndarray  # -1 = no explicit priority
    deadline: np.ndarray  # absolute seconds, NaN = none
    phase: np.ndarray

    def __len__(self) -> int:
        return int(self.times.size)

    def model_names(self) -> np.ndarray:
        return np.asarray(self.models, dtype=object)[self.model_idx]

    def requests(self, first_id: int = 0) -> Iterator[Request]:
        """The arrivals as :class:`Request` objects, in time order."""
        models = self.models
        for i, (t, m, s, p, d) in enumerate(
            zip(
                self.times.tolist(), self.model_idx.tolist(), self.input_size.tolist(),
                self.priority.tolist(), self.deadline.tolist(), strict=True,
            )
        ):
            yield Request(
                id=first_id + i, model=models[m], input_size=s, arrival=t,
                priority=None if p < 0 else p, deadline=None if math.isnan(d) else d,
            )


@dataclass(frozen=True)
class WorkloadSpec:
    """Everything needed to regenerate a workload, deterministically from ``seed``."""

    name: str = "workload"
    duration: float = 10.0
    arrival: ArrivalSpec = field(default_factory=ArrivalSpec)
    mix: Mapping[str, float] = field(default_factory=lambda: {"mobilenet_v2": 1.0})
    sizes: Mapping[str, SizeDist] = field(default_factory=dict)
    priorities: Mapping[str, int] = field(default_factory=dict)
    deadline_ms: Mapping[str, float] = field(default_factory=dict)
    phases: tuple[Phase, ...] = ()
    warmup_s: float = 0.0
    seed: int = 0
    description: str = ""

    def __post_init__(self) -> None:
        if self.duration <= 0 and not self.phases:
            raise ValueError(f"workload duration must be > 0, got {self.duration}")
        if self.warmup_s < 0:
            raise ValueError("warmup_s must be >= 0")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkloadSpec:
        allowed = [f.name for f in fields(cls)]
        _check_keys("workload", data, allowed)
        d = dict(data)
        if "arrival" in d:
            d["arrival"] = ArrivalSpec.from_dict(d["arrival"])
        if "mix" in d:
            d["mix"] = _parse_mix(d["mix"])
        if "sizes" in d:
            d["sizes"] = _parse_sizes(d["sizes"])
        if "priorities" in d:
            d["priorities"] = {str(k): int(v) for k, v in d["priorities"].items()}
        if "deadline_ms" in d:
            dl = d["deadline_ms"]
            d["deadline_ms"] = {"*": float(dl)} if isinstance(dl, int | float) else {
                str(k): float(v) for k, v in dl.items()
            }
        if "phases" in d:
            d["phases"] = tuple(Phase.from_dict(p) for p in d["phases"])
            d.setdefault("duration", sum(p.duration for p in d["phases"]))
        for k in ("duration", "warmup_s"):
            if k in d:
                d[k] = float(d[k])
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """A plain-data form that :meth:`from_dict` reads back to an equal spec."""

        def arrival(a: ArrivalSpec) -> dict[str, Any]:
            out = {f.name: getattr(a, f.name) for f in fields(a)}
            out["times"] = list(a.times)
            return out

        def size(s: SizeDist) -> dict[str, Any]:
            out = {f.name: getattr(s, f.name) for f in fields(s)}
            out["values"], out["weights"] = list(s.values), list(s.weights)
            return out

        return {
            "name": self.name,
            "duration": self.duration,
            "arrival": arrival(self.arrival),
            "mix": dict(self.mix),
            "sizes": {m: size(s) for m, s in self.sizes.items()},
            "priorities": dict(self.priorities),
            "deadline_ms": dict(self.deadline_ms),
            "phases": [
                {
                    "duration": p.duration,
                    "arrival": arrival(p.arrival),
                    "mix": dict(p.mix) if p.mix is not None else None,
                    "sizes": {m: size(s) for m, s in p.sizes.items()} if p.sizes is not None else None,
                }
                for p in self.phases
            ],
            "warmup_s": self.warmup_s,
            "seed": self.seed,
            "description": self.description,
        }

    # -- derived views ---------------------------------------------------------------------
    def effective_phases(self) -> tuple[Phase, ...]:
        """The phases with inherited mix and sizes filled in (a single phase if none given)."""
        if not self.phases:
            return (Phase(self.duration, self.arrival, dict(self.mix), self._sizes_for(self.mix)),)
        out = []
        for p in self.phases:
            mix = dict(p.mix) if p.mix is not None else dict(self.mix)
            sizes = {**self._sizes_for(mix), **(p.sizes or {})}
            out.append(Phase(p.duration, p.arrival, mix, sizes))
        return tuple(out)

    def _sizes_for(self, mix: Mapping[str, float]) -> dict[str, SizeDist]:
        sizes = {}
        for m in mix:
            if m in self.sizes:
                sizes[m] = self.sizes[m]
            elif m in DEFAULT_SIZES:
                sizes[m] = DEFAULT_SIZES[m]
            else:
                sizes[m] = SizeDist(kind="fixed", value=1)
        return sizes

    @property
    def models(self) -> tuple[str, ...]:
        names: dict[str, None] = {}
        for p in self.effective_phases():
            names.update(dict.fromkeys(p.mix or {}))
        return tuple(names)

    @property
    def total_duration(self) -> float:
        return sum(p.duration for p in self.effective_phases())

    def phase_starts(self) -> list[float]:
        starts, t = [], 0.0
        for p in self.effective_phases():
            starts.append(t)
            t += p.duration
        return starts

    def mean_rate(self) -> float:
        phases = self.effective_phases()
        return sum(p.arrival.mean_rate * p.duration for p in phases) / sum(p.duration for p in phases)

    def scaled(self, factor: float) -> WorkloadSpec:
        """The same workload with every arrival rate multiplied by ``factor``."""
        return replace(
            self, arrival=self.arrival.scaled(factor),
            phases=tuple(replace(p, arrival=p.arrival.scaled(factor)) for p in self.phases),
        )

    def with_seed(self, seed: int) -> WorkloadSpec:
        return replace(self, seed=seed)

    # -- generation --------------------------------------------------------------------------
    def generate(self) -> Arrivals:
        """Sample the workload (same seed, same arrivals)."""
        rng = np.random.default_rng(self.seed)
        phases = self.effective_phases()
        models = self.models
        index = {m: i for i, m in enumerate(models)}
        cols: dict[str, list[np.ndarray]] = {k: [] for k in ("t", "m", "s", "ph")}
        start = 0.0
        for k, p in enumerate(phases):
            t = p.arrival.sample(p.duration, rng) + start
            mix = p.mix or {}
            names = list(mix)
            w = np.array([mix[m] for m in names], dtype=float)
            pick = rng.choice(len(names), size=t.size, p=w / w.sum())
            sizes = np.empty(t.size, dtype=np.int64)
            for j, m in enumerate(names):
                sel = pick == j
                sizes[sel] = (p.sizes or {})[m].sample(int(sel.sum()), rng)
            remap = np.array([index[m] for m in names], dtype=np.int16)
            cols["t"].append(t)
            cols["m"].append(remap[pick])
            cols["s"].append(sizes)
            cols["ph"].append(np.full(t.size, k, dtype=np.int16))
            start += p.duration
        times = np.concatenate(cols["t"]) if cols["t"] else np.empty(0)
        model_idx = np.concatenate(cols["m"]).astype(np.int16)
        prio_table = np.array([self.priorities.get(m, -1) for m in models], dtype=np.int64)
        wild = self.deadline_ms.get("*", math.nan)
        dl_table = np.array([self.deadline_ms.get(m, wild) for m in models], dtype=float) / 1e3
        return Arrivals(
            times=times,
            model_idx=model_idx,
            models=models,
            input_size=np.concatenate(cols["s"]),
            priority=prio_table[model_idx] if models else np.empty(0, dtype=np.int64),
            deadline=times + dl_table[model_idx] if models else np.empty(0),
            phase=np.concatenate(cols["ph"]),
        )
