"""The validation's two figures: simulated vs live latency (scatter) and the rank plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from servelab.analysis.validate.grid import SETUPS
from servelab.analysis.validate.metrics import main, spearman

COLORS = dict(zip(SETUPS, ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"), strict=True))
MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    from servelab.results import save_figure

    return save_figure(fig, path)


def _proxy(marker: str, color: str, label: str) -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], marker=marker, color=color, markeredgecolor="k",
                  markeredgewidth=0.3, linestyle="", label=label)


def _load_proxies(loads: list[float]) -> list[Any]:
    return [_proxy(MARKERS[j % len(MARKERS)], "0.6", f"load {lv:.0%}")
            for j, lv in enumerate(loads)]


def plot_scatter(points: pd.DataFrame, path: Path, band: float = 0.15) -> Path | None:
    """Sim vs live p50 and p99 (log axes), one colour per setup, marker per load level, the
    y = x line and a +-``band`` band."""
    g = main(points)
    if g.empty:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    loads = sorted(set(g["load"]))
    for ax, metric in zip(axes, ("p50", "p99"), strict=True):  # seconds in data, ms drawn
        x = g[f"live_{metric}_s"].to_numpy(float) * 1e3
        y = g[f"sim_{metric}_s"].to_numpy(float) * 1e3
        ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
        if not ok.any():
            continue
        lo, hi = min(x[ok].min(), y[ok].min()) / 1.5, max(x[ok].max(), y[ok].max()) * 1.5
        line = np.geomspace(lo, hi, 50)
        ax.plot(line, line, color="k", lw=0.8, label="sim = live")
        ax.fill_between(line, line * (1 - band), line * (1 + band), color="0.8", alpha=0.6,
                        label=f"±{band:.0%}")
        for setup, s in g.groupby("setup", sort=False):
            for j, load in enumerate(loads):
                p = s[(s["load"] == load)]
                px = p[f"live_{metric}_s"].to_numpy(float) * 1e3
                py = p[f"sim_{metric}_s"].to_numpy(float) * 1e3
                keep = np.isfinite(px) & np.isfinite(py) & (px > 0) & (py > 0)
                ax.scatter(px[keep], py[keep], s=26, color=COLORS.get(str(setup), "0.4"),
                           marker=MARKERS[j % len(MARKERS)], edgecolor="k", linewidth=0.3,
                           label=f"{setup}" if j == 0 else None)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel(f"live {metric} (ms)")
        ax.set_ylabel(f"simulated {metric} (ms)")
        ax.grid(alpha=0.3, which="both")
        ax.set_title(f"{metric} latency, every point", fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()
    proxies = _load_proxies(loads)
    axes[0].legend(handles + proxies, labels + [h.get_label() for h in proxies], fontsize=7,
                   loc="upper left")
    fig.tight_layout()
    out = _save(fig, path)
    plt.close(fig)
    return out


def plot_ranks(points: pd.DataFrame, path: Path, metric: str = "reward") -> Path | None:
    """Per workload, each configuration's live rank against its simulated rank of ``metric``
    (1 = best) at every load level; on the diagonal the simulator ranks as live does."""
    g = main(points)
    if g.empty:
        return None
    plt = _pyplot()
    workloads = list(dict.fromkeys(g["workload"]))
    fig, axes = plt.subplots(1, len(workloads), figsize=(4.2 * len(workloads), 4.2),
                             squeeze=False)
    loads = sorted(set(g["load"]))
    for ax, wl in zip(axes[0], workloads, strict=True):
        w = g[g["workload"] == wl]
        n = int(w.groupby("load").size().max())
        ax.plot([1, n], [1, n], color="k", lw=0.8)
        titles = []
        for j, load in enumerate(loads):
            p = w[w["load"] == load]
            if p.empty:
                continue
            live = p[f"live_{metric}"].rank(ascending=False, method="average")
            sim = p[f"sim_{metric}"].rank(ascending=False, method="average")
            ax.scatter(live, sim, c=[COLORS.get(str(s), "0.4") for s in p["setup"]],
                       marker=MARKERS[j % len(MARKERS)], s=34, edgecolor="k", linewidth=0.3,
                       label=f"{load:.0%}")
            rho = spearman(p[f"live_{metric}"], p[f"sim_{metric}"])
            titles.append(f"{load:.0%}: {rho:+.2f}" if np.isfinite(rho) else f"{load:.0%}: n/a")
        ax.set_xlabel(f"live rank of {metric} (1 = best)")
        ax.set_ylabel(f"simulated rank of {metric}")
        ax.set_xlim(0.5, n + 0.5)
        ax.set_ylim(0.5, n + 0.5)
        ax.grid(alpha=0.3)
        ax.set_title(f"{wl} — Spearman " + ", ".join(titles), fontsize=8)
        setups = list(dict.fromkeys(w["setup"]))
        handles = [_proxy("o", COLORS.get(str(s), "0.4"), str(s)) for s in setups]
        ax.legend(handles=handles + _load_proxies(loads), fontsize=7)
    fig.tight_layout()
    out = _save(fig, path)
    plt.close(fig)
    return out
