"""The validation's figures (one dict, what summary.json holds) and the printed tables."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from servelab.analysis.validate import metrics as M
from servelab.analysis.validate.attribution import FAMILIES, attribute, explain
from servelab.analysis.validate.grid import TARGET_LOAD, Cell

LAG_LIMIT = 0.02
"""A point whose load generator could not send more than this share of its schedule is
marked: on these 2 cores the generator competes with the server it measures."""


def figures(points: pd.DataFrame) -> dict[str, Any]:
    """Every figure of the validation from its points table."""
    nz = M.noise(points)
    wl = M.workload_figures(points, nz)
    pt = M.point_targets(points)
    sat_above = M.saturation_agreement(points, above=True)
    return {
        "noise": nz, "workloads": wl, "points": pt,
        "saturation": {"all": M.saturation_agreement(points), "above_capacity": sat_above},
        "errors_by_level": M.errors_by_level(points),
        "targets": [t.row() for t in M.targets(pt, wl, sat_above)],
    }


def worst_points(points: pd.DataFrame, k: int) -> pd.DataFrame:
    """The ``k`` measured points with the largest |p50 error| where neither side saturated."""
    g = M.add_errors(M.main(points))
    g = g[~g["live_saturated"].astype(bool) & ~g["sim_saturated"].astype(bool)
          & np.isfinite(g["err_p50_s"].to_numpy(float))]
    return g.reindex(g["err_p50_s"].abs().sort_values(ascending=False).index).head(k)


def attribute_worst(runner: Any, points: pd.DataFrame, k: int) -> list[dict[str, Any]]:
    """Error attribution (:mod:`.attribution`) for the worst points, with ``runner``'s
    profile, workloads and seeds."""
    out = []
    for r in worst_points(points, k).itertuples():
        cell = Cell.parse(str(r.cell))
        spec = runner.spec(str(r.workload), float(r.rate), int(r.seed))
        seeds = [spec.seed + j for j in range(runner.grid.sim_seeds)]
        attrs = attribute(runner.config(cell), spec, runner.profile_for(r._asdict()),
                          float(r.live_p50_s), seeds, FAMILIES)
        out.append({"key": r.key, "workload": r.workload, "cell": r.cell, "load": r.load,
                    "p50_error": float(r.err_p50_s), "live_p50_s": float(r.live_p50_s),
                    "sim_p50_s": float(r.sim_p50_s), "explain": explain(r.err_p50_s, attrs),
                    "families": [a.row() for a in attrs]})
    return out


def _ms(seconds: float) -> str:
    """A latency (seconds) for a table: ms, or s from 10 s."""
    if not math.isfinite(seconds):
        return "-"
    x = seconds * 1e3
    return f"{x / 1e3:.2f}s" if x >= 1e4 else f"{x:.0f}ms" if x >= 100 else f"{x:.1f}ms"


def _err(x: float) -> str:
    return f"{x:+.0%}" if math.isfinite(x) else "-"


def format_points(points: pd.DataFrame) -> str:
    """Per point: live vs sim p50, p99 and throughput with the errors (``*``: a target point,
    own load <= 80%; ``S``: saturated)."""
    g = M.add_errors(M.main(points)).sort_values(["workload", "load", "cell"])
    head = (f"{'workload':<10} {'load':>4} {'configuration':<23} {'own':>4} {'rate/s':>7} | "
            f"{'p50 live':>8} {'sim':>8} {'err':>5} | {'p99 live':>8} {'sim':>8} {'err':>5} | "
            f"{'thr live':>8} {'sim':>7} {'err':>5} | {'reward l/s':>12}")
    lines = [head, "-" * len(head)]
    for r in g.itertuples():
        tgt = "*" if r.own_load <= TARGET_LOAD + 1e-9 else " "
        sat = ("S" if r.live_saturated else " ") + ("S" if r.sim_saturated else " ")
        sat += "!" if getattr(r, "live_not_sent", 0.0) > LAG_LIMIT else ""
        lines.append(
            f"{r.workload:<10} {r.load:>4.0%} {Cell.parse(r.cell).label:<23} {r.own_load:>4.2f}"
            f"{tgt}{r.rate:>6.1f} | {_ms(r.live_p50_s):>8} {_ms(r.sim_p50_s):>8} "
            f"{_err(r.err_p50_s):>5} | {_ms(r.live_p99_s):>8} {_ms(r.sim_p99_s):>8} "
            f"{_err(r.err_p99_s):>5} | {r.live_throughput:>8.1f} {r.sim_throughput:>7.1f} "
            f"{_err(r.err_throughput):>5} | {r.live_reward:>5.1f}/{r.sim_reward:<5.1f}{sat}")
    lines.append("* own load <= 80% (the per-point targets count these); S: saturated "
                 f"(live, sim); !: the load generator fell behind (> {LAG_LIMIT:.0%} not sent)")
    return "\n".join(lines)


def format_workloads(fig: Mapping[str, Any]) -> str:
    lines = []
    for wl, f in fig["workloads"].items():
        nz = fig["noise"].get(wl, {})
        by = ", ".join(f"{float(k):.0%} {v:.1%}" for k, v in nz.get("reward_by_load", {}).items())
        noise = (f"reward noise {nz['reward']:.1%} (by load {by}; p50 {nz['p50_s']:.1%}, p99 "
                 f"{nz['p99_s']:.1%}; {int(nz['n'])} repeated points)"
                 if math.isfinite(nz.get("reward", math.nan)) else "noise not measured")
        sp = f"{f['spearman']:+.2f}" if math.isfinite(f["spearman"]) else "n/a"
        tp = f"{f['top_pick']:.0%}" if math.isfinite(f["top_pick"]) else "n/a"
        lines.append(f"{wl}: reward Spearman {sp} over {f['spearman_levels']} load level(s), "
                     f"top pick {tp} of the live best; {noise}")
        for lv in f["levels"]:
            rho = f"{lv['spearman']:+.2f}" if math.isfinite(lv["spearman"]) else "n/a"
            pick = f"{lv['top_pick']:.0%}" if math.isfinite(lv["top_pick"]) else "n/a"
            why = "" if lv["counted"] and not lv["why"] else f"  [{lv['why'] or 'not counted'}]"
            lines.append(f"  {lv['load']:>4.0%}: Spearman {rho} over {lv['n']} configurations; "
                         f"sim picks {lv['sim_top']} -> {pick} of live best ({lv['live_top']}); "
                         f"live spread {lv['live_spread']:.0%}{why}")
    return "\n".join(lines)


def format_targets(fig: Mapping[str, Any], command: str) -> str:
    lines = [f"targets (validation points; reproduce: {command})"]
    for t in fig["targets"]:
        mark = {True: "met   ", False: "MISSED", None: "n/a   "}[t["met"]]
        lines.append(f"  {mark} {t['name']:<40} {t['value']:<36} target {t['goal']}")
    sat = fig["saturation"]
    for name in ("all", "above_capacity"):
        s = sat[name]
        if s["disagree"]:
            lines.append(f"  saturation disagrees ({name.replace('_', ' ')}): "
                         + "; ".join(s["disagree"][:6]) + (" ..." if len(s["disagree"]) > 6 else ""))
    by = fig["errors_by_level"]
    lines.append("  median |error| by load level: " + "; ".join(
        f"{lv:.0%}: p50 {_pct(e['p50_s'])} p99 {_pct(e['p99_s'])} thr {_pct(e['throughput'])}"
        for lv, e in by.items()))
    return "\n".join(lines)


def _pct(x: float) -> str:
    return f"{x:.0%}" if math.isfinite(x) else "-"


def format_attribution(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "error attribution: no unsaturated point to attribute"
    lines = ["error attribution (worst p50 points; one parameter family scaled at a time, "
             "factor in [0.25, 4]):"]
    for r in rows:
        lines.append(f"  {r['workload']} {r['load']:.0%} {Cell.parse(r['cell']).label}: "
                     f"live {_ms(r['live_p50_s'])}, sim {_ms(r['sim_p50_s'])} — {r['explain']}")
    return "\n".join(lines)
