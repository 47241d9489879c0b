"""The figures of a validation, computed from its points table (one row per point).

A point's columns come in pairs — ``live_<m>`` and ``sim_<m>`` for ``m`` in :data:`METRICS` —
next to its labels (``workload``, ``cell``, ``setup``, ``load``: the level, a fraction of the
workload's reference capacity; ``own_load``: the rate over the configuration's own live
capacity; ``repeat``: 0 for the measurement, 1.. for re-runs).  Every function here is plain
arithmetic on that table, so the tests feed it synthetic tables.

* point errors ``(sim - live) / live`` and the share within tolerance, on points with own load
  <= 0.8 (:func:`point_targets`);
* per workload and load level, over configurations: the Spearman rank correlation of reward
  between sim and live, counted only where the live rewards differ by more than their
  run-to-run noise, and the live reward of the simulator's top pick as a share of the live
  best (:func:`workload_figures`);
* whether sim and live agree on which configurations saturate (:func:`saturation_agreement`);
* the run-to-run noise, from repeated points (:func:`noise`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from servelab.analysis.validate.grid import TARGET_LOAD

METRICS = ("p50_s", "p99_s", "throughput", "reward", "goodput")
"""The compared figures (``live_<m>``, ``sim_<m>``): latencies in seconds, rates per second."""
TOLERANCE = {"p50_s": 0.15, "throughput": 0.15, "p99_s": 0.25}
"""Per-point targets: |error| within these on at least :data:`POINT_SHARE` of the points."""
POINT_SHARE = 0.8
SPEARMAN_TARGET = 0.8
TOP_PICK_TARGET = 0.95
SATURATED_SHARE = 0.9
FAILED_LIMIT = 0.01


def rel_error(sim: float, live: float) -> float:
    """``(sim - live) / live``; NaN when either is missing or live is 0."""
    if not (math.isfinite(sim) and math.isfinite(live)) or live == 0:
        return math.nan
    return (sim - live) / live


def is_saturated(throughput: float, offered: float, failed: float = 0.0) -> bool:
    """Completions below 90% of the offered rate, or more than 1% of requests failed."""
    return bool(throughput < SATURATED_SHARE * offered or failed > FAILED_LIMIT)


def add_errors(points: pd.DataFrame) -> pd.DataFrame:
    """``err_<m>`` columns for every metric pair present."""
    out = points.copy()
    for m in METRICS:
        if f"live_{m}" in out and f"sim_{m}" in out:
            out[f"err_{m}"] = [rel_error(s, v) for s, v in zip(out[f"sim_{m}"], out[f"live_{m}"],
                                                               strict=True)]
    return out


def spearman(live: Sequence[float], sim: Sequence[float]) -> float:
    """Spearman's rank correlation (scipy); NaN below 3 pairs or with a constant side."""
    from scipy.stats import spearmanr

    a, b = np.asarray(live, dtype=float), np.asarray(sim, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(spearmanr(a, b).statistic)


def top_pick_share(live: Sequence[float], sim: Sequence[float]) -> float:
    """The live value of the configuration the simulator ranks first, over the live best."""
    a, b = np.asarray(live, dtype=float), np.asarray(sim, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if a.size == 0 or not a.max() > 0:
        return math.nan
    return float(a[int(np.argmax(b))] / a.max())


def spread(values: Sequence[float]) -> float:
    """(max - min) / mean: the relative range."""
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=float)
    if v.size < 2 or not v.mean() > 0:
        return math.nan
    return float(np.ptp(v) / v.mean())


def main(points: pd.DataFrame) -> pd.DataFrame:
    """The measurements proper (repeat 0)."""
    return points[points["repeat"] == 0] if "repeat" in points else points


def noise(points: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Run-to-run noise per workload: the mean relative range of live reward, p50 and p99 over
    the points measured more than once (``n``: how many such points); ``reward_by_load``: the
    reward's at each load level repeated (noise grows with load: near a configuration's knee
    one repeat can differ tenfold while the same configuration at half load repeats to 2%)."""
    out: dict[str, dict[str, Any]] = {}
    for wl, g in points.groupby("workload", sort=False):
        groups = [x for _, x in g.groupby(["cell", "load"]) if len(x) > 1]
        row: dict[str, Any] = {"n": float(len(groups))}
        if "live_reward" in g:
            by_load: dict[float, list[float]] = {}
            for x in groups:
                v = spread(x["live_reward"].tolist())
                if math.isfinite(v):
                    by_load.setdefault(float(x["load"].iloc[0]), []).append(v)
            row["reward_by_load"] = {k: float(np.mean(v)) for k, v in sorted(by_load.items())}
        for m in ("reward", "p50_s", "p99_s"):
            if f"live_{m}" not in g:
                row[m] = math.nan
                continue
            vals = [spread(x[f"live_{m}"].tolist()) for x in groups]
            vals = [v for v in vals if math.isfinite(v)]
            row[m] = float(np.mean(vals)) if vals else math.nan
        out[str(wl)] = row
    return out


@dataclass(frozen=True)
class Level:
    """The ranking figures of one workload at one load level."""

    load: float
    n: int
    spearman: float
    top_pick: float
    sim_top: str
    live_top: str
    live_spread: float
    counted: bool
    why: str

    def row(self) -> dict[str, Any]:
        return dict(self.__dict__)


def level_figures(points: pd.DataFrame, workload: str, reward_noise: float,
                  metric: str = "reward",
                  noise_at: Mapping[float, float] | None = None) -> list[Level]:
    """Per load level of ``workload``: Spearman and top-pick share over the configurations;
    a level counts where its live rewards differ by more than the noise measured at that
    level (``noise_at``), or else than the workload's (``reward_noise``)."""
    out = []
    g = main(points)
    g = g[g["workload"] == workload]
    for load, x in g.groupby("load", sort=True):
        reward_noise = (noise_at or {}).get(float(load), reward_noise)
        live, sim = x[f"live_{metric}"].to_numpy(float), x[f"sim_{metric}"].to_numpy(float)
        sp = spread(live.tolist())
        if len(x) < 3:
            counted, why = False, "fewer than 3 configurations"
        elif math.isfinite(reward_noise) and not sp > reward_noise:
            counted, why = False, f"live rewards within noise ({sp:.0%} <= {reward_noise:.0%})"
        else:
            counted = True
            why = "" if math.isfinite(reward_noise) else "noise not measured"
        cells = x["cell"].tolist()
        out.append(Level(
            load=float(load), n=len(x), spearman=spearman(live, sim),
            top_pick=top_pick_share(live, sim),
            sim_top=cells[int(np.nanargmax(sim))] if np.isfinite(sim).any() else "",
            live_top=cells[int(np.nanargmax(live))] if np.isfinite(live).any() else "",
            live_spread=sp, counted=counted, why=why,
        ))
    return out


def workload_figures(points: pd.DataFrame,
                     noise_by: Mapping[str, Mapping[str, Any]] | None = None,
                     max_load: float = TARGET_LOAD) -> dict[str, dict[str, Any]]:
    """Per workload: the levels' figures; ``spearman``, the mean over the counted levels at or
    below ``max_load``; ``top_pick``, the worst share over the levels at or below it."""
    noise_by = noise_by if noise_by is not None else noise(points)
    out: dict[str, dict[str, Any]] = {}
    for wl in dict.fromkeys(points["workload"]):
        rn = noise_by.get(str(wl), {}).get("reward", math.nan)
        levels = level_figures(points, str(wl), rn,
                               noise_at=noise_by.get(str(wl), {}).get("reward_by_load"))
        low = [lv for lv in levels if lv.load <= max_load + 1e-9]
        counted = [lv.spearman for lv in low if lv.counted and math.isfinite(lv.spearman)]
        picks = [lv.top_pick for lv in low if math.isfinite(lv.top_pick)]
        goodput = level_figures(points, str(wl), math.nan, metric="goodput") if (
            "live_goodput" in points) else []
        out[str(wl)] = {
            "spearman": float(np.mean(counted)) if counted else math.nan,
            "spearman_levels": len(counted),
            "top_pick": float(min(picks)) if picks else math.nan,
            "reward_noise": rn,
            "levels": [lv.row() for lv in levels],
            "goodput_spearman": {lv.load: lv.spearman for lv in goodput},
        }
    return out


def saturation_agreement(points: pd.DataFrame, above: bool = False) -> dict[str, Any]:
    """The share of points where sim and live agree on saturation, and the points where they
    do not; ``above``: only the points above capacity — a level above the reference capacity,
    or a rate above the configuration's own live capacity."""
    g = main(points)
    if above:
        g = g[(g["load"] > 1.0) | (g["own_load"] > 1.0)]
    if g.empty:
        return {"share": math.nan, "n": 0, "disagree": []}
    agree = g["live_saturated"].astype(bool) == g["sim_saturated"].astype(bool)
    bad = g[~agree]
    return {
        "share": float(agree.mean()), "n": int(len(g)),
        "disagree": [f"{r.workload} {r.cell} @{r.load:g} (live {'sat' if r.live_saturated else 'ok'}"
                     f", sim {'sat' if r.sim_saturated else 'ok'})" for r in bad.itertuples()],
    }


def point_targets(points: pd.DataFrame, max_load: float = TARGET_LOAD) -> dict[str, dict[str, float]]:
    """Per metric: the share of points (own load <= ``max_load``) within tolerance."""
    g = add_errors(main(points))
    g = g[g["own_load"] <= max_load + 1e-9]
    out = {}
    for m, tol in TOLERANCE.items():
        err = g[f"err_{m}"].to_numpy(float)
        ok = np.isfinite(err) & (np.abs(err) <= tol)
        out[m] = {"share": float(ok.mean()) if err.size else math.nan, "n": int(err.size),
                  "tolerance": tol,
                  "median_abs_error": float(np.nanmedian(np.abs(err))) if np.isfinite(err).any()
                  else math.nan}
    return out


def errors_by_level(points: pd.DataFrame) -> dict[float, dict[str, float]]:
    """Median |error| per metric at each load level (the 95% and overload report)."""
    g = add_errors(main(points))
    out = {}
    for load, x in g.groupby("load", sort=True):
        out[float(load)] = {m: float(np.nanmedian(np.abs(x[f"err_{m}"].to_numpy(float))))
                            if np.isfinite(x[f"err_{m}"].to_numpy(float)).any() else math.nan
                            for m in TOLERANCE}
    return out


@dataclass(frozen=True)
class Target:
    name: str
    value: str
    goal: str
    met: bool | None
    """None: could not be judged (nothing to count)."""

    def row(self) -> dict[str, Any]:
        return dict(self.__dict__)


def targets(point_t: Mapping[str, Mapping[str, float]], wl: Mapping[str, Mapping[str, Any]],
            sat_above: Mapping[str, Any]) -> list[Target]:
    """Every target of the issue, met or missed, with the figure."""
    out = []
    for m, t in point_t.items():
        share = t["share"]
        out.append(Target(
            f"{m.removesuffix('_s')} within {t['tolerance']:.0%}",
            f"{share:.0%} of {t['n']} points" if math.isfinite(share) else "no points",
            f">= {POINT_SHARE:.0%} of points at own load <= {TARGET_LOAD:.0%}",
            share >= POINT_SHARE if math.isfinite(share) else None,
        ))
    for name, f in wl.items():
        sp, tp = f["spearman"], f["top_pick"]
        out.append(Target(f"{name}: reward Spearman", f"{sp:+.2f}" if math.isfinite(sp) else
                          "n/a (no load level outside the noise)", f">= {SPEARMAN_TARGET}",
                          sp >= SPEARMAN_TARGET if math.isfinite(sp) else None))
        out.append(Target(f"{name}: top pick / live best", f"{tp:.0%}" if math.isfinite(tp)
                          else "n/a", f">= {TOP_PICK_TARGET:.0%}",
                          tp >= TOP_PICK_TARGET if math.isfinite(tp) else None))
    share = sat_above.get("share", math.nan)
    out.append(Target("saturation agreement above capacity",
                      f"{share:.0%} of {sat_above['n']} points" if math.isfinite(share)
                      else "no points above capacity", "100%",
                      share == 1.0 if math.isfinite(share) else None))
    return out
