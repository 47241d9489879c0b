"""Error attribution: which modelled cost would have to change, and by how much, to close a gap.

For a point whose simulated p50 misses the live one, each *family* of profile parameters is
scaled on its own — a family is a name and a function ``(profile, factor) -> profile`` — and
the factor in [0.25, 4] that makes the simulated p50 match the live p50 is found by geometric
bisection (the same seeds at every factor, so the curve is smooth in the factor).  The answer
reads "p50 error -60%: would need service x1.8 or front end x3.1".

The families scale fields of the profile's dataclasses with :func:`dataclasses.replace`, by
naming convention rather than by a fixed list: a *time* field is a float whose name ends in
``_s`` (``fixed_s``, ``per_byte_s``, ``thread_handoff_s``, ...), the seconds of a cost
curve's points and the values of the mappings named in :data:`TIME_MAPS`, so fields the model
gains later scale too.  A family whose fields the profile
lacks (or that change nothing) is reported as such.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from servelab.core.config import ServerConfig
from servelab.core.profile import CostCurve, Profile
from servelab.core.workload import WorkloadSpec

Scaler = Callable[[Profile, float], Profile]
LO, HI = 0.25, 4.0
TIME_MAPS = ("convoy",)
"""Mapping fields whose values are seconds (e.g. a front end's convoy delay per model)."""


def scale_times(obj: Any, factor: float) -> Any:
    """``obj`` with every time field (see the module docstring) multiplied by ``factor``,
    recursing into nested dataclasses, mappings and tuples of them."""
    if isinstance(obj, Mapping):
        return {k: scale_times(v, factor) for k, v in obj.items()}
    if isinstance(obj, tuple) and obj and dataclasses.is_dataclass(obj[0]):
        return tuple(scale_times(v, factor) for v in obj)
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        return obj
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, float | int) and not isinstance(v, bool) and f.name.endswith("_s"):
            changes[f.name] = float(v) * factor
        elif f.name in TIME_MAPS and isinstance(v, Mapping):
            changes[f.name] = {k: float(x) * factor for k, x in v.items()}
        elif isinstance(obj, CostCurve) and f.name == "points":
            changes[f.name] = tuple((s, t * factor) for s, t in v)
        elif dataclasses.is_dataclass(v) or isinstance(v, Mapping) or (
                isinstance(v, tuple) and v and dataclasses.is_dataclass(v[0])):
            changes[f.name] = scale_times(v, factor)
    return dataclasses.replace(obj, **changes)  # type: ignore[type-var]


def scale_attrs(*names: str) -> Scaler:
    """A family: the time fields of the profile's attributes ``names`` (those it has)."""

    def scale(p: Profile, factor: float) -> Profile:
        have = {n: scale_times(getattr(p, n), factor) for n in names if hasattr(p, n)}
        return dataclasses.replace(p, **have)

    return scale


def scale_service(p: Profile, factor: float) -> Profile:
    """Every model's service time (preprocess, forward, postprocess)."""
    return dataclasses.replace(p, models={k: scale_times(m, factor) for k, m in p.models.items()})


def scale_gil(p: Profile, factor: float) -> Profile:
    """GIL contention: the models' GIL shares (capped at 1), every number of the GIL's own
    cost model, and the measured co-run rates' shortfall from 1 (``1 - (1 - r) * factor``)."""
    models = {k: dataclasses.replace(m, gil_share=min(1.0, m.gil_share * factor))
              for k, m in p.models.items()}
    gil = p.gil
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(gil):
        v = getattr(gil, f.name)
        if isinstance(v, float | int) and not isinstance(v, bool):
            changes[f.name] = v * factor
        elif f.name == "pairs" and isinstance(v, Mapping):
            changes[f.name] = {a: {b: min(4.0, max(0.02, 1.0 - (1.0 - r) * factor))
                                   for b, r in row.items()} for a, row in v.items()}
    return dataclasses.replace(p, models=models, gil=dataclasses.replace(gil, **changes))


def scale_interference(p: Profile, factor: float) -> Profile:
    """The slowdown tables' excess over 1 (``1 + (x - 1) * factor``)."""
    it = p.interference
    tables = {f.name: tuple(max(0.05, 1.0 + (x - 1.0) * factor) for x in getattr(it, f.name))
              for f in dataclasses.fields(it) if isinstance(getattr(it, f.name), tuple)}
    return dataclasses.replace(p, interference=dataclasses.replace(it, **tables))


FAMILIES: tuple[tuple[str, Scaler], ...] = (
    ("service", scale_service),
    ("front end", scale_attrs("http", "event_loop", "frontend", "front_end")),
    ("ipc", scale_attrs("ipc")),
    ("gil", scale_gil),
    ("interference", scale_interference),
    ("client", scale_attrs("client", "loadgen")),
)
"""The parameter families attribution tries, in order."""


@dataclass(frozen=True)
class Attribution:
    family: str
    factor: float
    """The matching factor; NaN when none in [lo, hi] matches."""
    verdict: str
    """``match``, ``above`` (even x hi is not enough), ``below`` (even x lo is too much),
    ``no effect`` or ``absent`` (the profile has no such parameters)."""
    p50_lo_s: float = math.nan
    p50_hi_s: float = math.nan
    """The simulated p50 at the lowest and the highest factor (seconds)."""

    def row(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def phrase(self, lo: float = LO, hi: float = HI) -> str:
        if self.verdict == "match":
            return f"{self.family} x{self.factor:.2g}"
        if self.verdict == "above":
            return f"{self.family} > x{hi:g}"
        if self.verdict == "below":
            return f"{self.family} < x{lo:g}"
        return f"{self.family}: {self.verdict}"


def sim_p50(config: ServerConfig, spec: WorkloadSpec, profile: Profile,
            seeds: Sequence[int]) -> float:
    """Mean simulated p50 (seconds) over ``seeds``."""
    from servelab.sim.run import simulate

    vals = [simulate(config, spec, profile, seed=s).summary["latency_s"]["p50"] for s in seeds]
    vals = [v for v in vals if math.isfinite(v)]
    return float(np.mean(vals)) if vals else math.nan


def match_factor(g: Callable[[float], float], target: float, lo: float = LO, hi: float = HI,
                 iters: int = 8, g1: float | None = None) -> tuple[float, str, float, float]:
    """The factor ``f`` in [lo, hi] with ``g(f) == target`` (geometric bisection on the
    bracket around 1); returns (factor, verdict, g(lo), g(hi))."""
    g_lo, g_hi = g(lo), g(hi)
    g_one = g(1.0) if g1 is None else g1
    if not all(math.isfinite(x) for x in (g_lo, g_hi, g_one)):
        return math.nan, "no effect", g_lo, g_hi
    if abs(g_hi - g_lo) <= 0.01 * max(abs(g_one), 1e-12):
        return math.nan, "no effect", g_lo, g_hi
    pts = [(lo, g_lo), (1.0, g_one), (hi, g_hi)]
    for (a, ga), (b, gb) in zip(pts, pts[1:], strict=False):
        if (ga - target) * (gb - target) <= 0:
            for _ in range(iters):
                m = math.sqrt(a * b)
                gm = g(m)
                if (ga - target) * (gm - target) <= 0:
                    b, gb = m, gm
                else:
                    a, ga = m, gm
            # log-linear interpolation inside the last bracket
            if gb != ga:
                w = min(max((target - ga) / (gb - ga), 0.0), 1.0)
                return math.exp(math.log(a) + w * (math.log(b) - math.log(a))), "match", g_lo, g_hi
            return math.sqrt(a * b), "match", g_lo, g_hi
    increasing = g_hi > g_lo
    too_low = target > max(g_lo, g_hi)
    verdict = "above" if too_low == increasing else "below"
    return math.nan, verdict, g_lo, g_hi


def attribute(config: ServerConfig, spec: WorkloadSpec, profile: Profile, live_p50_s: float,
              seeds: Sequence[int], families: Sequence[tuple[str, Scaler]] = FAMILIES,
              lo: float = LO, hi: float = HI, iters: int = 8) -> list[Attribution]:
    """Per family, the factor that makes the simulated p50 of this point match ``live_p50_s``."""
    base = sim_p50(config, spec, profile, seeds)
    out = []
    for name, scale in families:
        if scale(profile, 2.0).digest == profile.digest:
            out.append(Attribution(name, math.nan, "absent"))
            continue
        cache: dict[float, float] = {1.0: base}

        def g(f: float, scale: Scaler = scale, cache: dict[float, float] = cache) -> float:
            if f not in cache:
                cache[f] = sim_p50(config, spec, scale(profile, f), seeds)
            return cache[f]

        f, verdict, g_lo, g_hi = match_factor(g, live_p50_s, lo, hi, iters, g1=base)
        out.append(Attribution(name, f, verdict, g_lo, g_hi))
    return out


def explain(p50_error: float, attributions: Sequence[Attribution], lo: float = LO,
            hi: float = HI) -> str:
    """One line: "p50 error -60%: would need service x1.8 or front end x3.1 (...)"."""
    matches = sorted((a for a in attributions if a.verdict == "match"),
                     key=lambda a: abs(math.log(a.factor)))
    rest = [a for a in attributions if a.verdict != "match" and a.verdict != "absent"]
    head = f"p50 error {p50_error:+.0%}: "
    head += ("would need " + " or ".join(a.phrase(lo, hi) for a in matches)) if matches else (
        f"no single family in [x{lo:g}, x{hi:g}] closes it")
    if rest:
        head += " (" + "; ".join(a.phrase(lo, hi) for a in rest) + ")"
    return head
