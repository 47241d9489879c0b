"""``servelab sched-study``'s report: the table of cells, the targets and the wait plot.

The study itself (the simulated and live grids, the metrics per cell) is the rest of
:mod:`servelab.analysis.sched_study`; this module only reads its cells and waits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from servelab.analysis.sched_study.grid import STUDY_POLICIES, short

COLORS = {p: f"C{i}" for i, p in enumerate(STUDY_POLICIES)}


def format_cells(cells: pd.DataFrame, models: Sequence[str]) -> str:
    """One block per (source, concurrency, load): a row per policy."""
    if cells.empty:
        return ""
    cls = " ".join(f"{short(m):>6}" for m in models)
    head = (f"  {'policy':<12} mean wait ms: {cls} {'all':>6} | p99 wait ms: {cls} | "
            f"{'starved (max wait)':<19} {'Jain':>5} {'thr/s':>6} {'vs FIFO':>8}")
    lines = []
    for (src, conc, load), g in cells.groupby(["source", "concurrency", "load"], sort=False):
        r0 = g.iloc[0]
        lines.append(f"{src} {conc} at {load:.0%} of capacity ({r0['rate']:.1f} of "
                     f"{r0['capacity']:.1f} req/s)")
        lines.append(head)
        fifo = g[g["policy"] == "fifo"]
        base = float(fifo["wait_mean"].iloc[0]) if len(fifo) else math.nan
        for _, r in g.iterrows():
            means = " ".join(f"{r[f'wait_mean_{m}'] * 1e3:>6.1f}" for m in models)
            p99s = " ".join(f"{r[f'wait_p99_{m}'] * 1e3:>6.0f}" for m in models)
            starve = (f"{short(r['starved_class'])} {r['starved_max_wait'] * 1e3:.0f} ms"
                      if r["starved_class"] else "-")
            vs = f"{r['wait_mean'] / base - 1:>+8.0%}" if base > 0 else f"{'':>8}"
            lines.append(f"  {r['policy']:<12} {'':13}{means} {r['wait_mean'] * 1e3:>6.1f} | "
                         f"{'':12} {p99s} | {starve:<19} {r['jain']:>5.2f} "
                         f"{r['throughput']:>6.1f} {vs}")
    return "\n".join(lines)


def targets(cells: pd.DataFrame, models: Sequence[str]) -> list[dict[str, Any]]:
    """Per cell: SJF vs FIFO, learned vs oracle, what MLFQ costs and buys."""
    out = []
    for (src, conc, load), g in cells.groupby(["source", "concurrency", "load"], sort=False):
        by = {r["policy"]: r for _, r in g.iterrows()}
        if "fifo" not in by:
            continue
        f = by["fifo"]
        slow = max(models, key=lambda m: np.nan_to_num(f[f"service_mean_{m}"]))
        row: dict[str, Any] = {"source": src, "concurrency": conc, "load": load}
        for p in ("sjf-learned", "sjf-oracle", "sjf-mean", "priority", "mlfq"):
            if p in by:
                row[f"{p}_cut"] = 1 - by[p]["wait_mean"] / f["wait_mean"]
        if "sjf-learned" in by and "sjf-oracle" in by:
            lw, ow, fw = by["sjf-learned"]["wait_mean"], by["sjf-oracle"]["wait_mean"], f["wait_mean"]
            row["learned_over_oracle"] = lw / ow if ow > 0 else math.nan
            row["learned_gap_closed"] = (fw - lw) / (fw - ow) if fw > ow else math.nan
        if "mlfq" in by:
            m = by["mlfq"]
            fast = [x for x in models if x != slow]
            row["mlfq_fast_wait_cut"] = 1 - (
                sum(m[f"wait_mean_{x}"] * m[f"n_{x}"] for x in fast) / sum(m[f"n_{x}"] for x in fast)
            ) / (sum(f[f"wait_mean_{x}"] * f[f"n_{x}"] for x in fast) / sum(f[f"n_{x}"] for x in fast))
            row["mlfq_slow_sojourn_change"] = m[f"sojourn_mean_{slow}"] / f[f"sojourn_mean_{slow}"] - 1
            row["mlfq_slow_p99_sojourn_change"] = (
                m[f"sojourn_p99_{slow}"] / f[f"sojourn_p99_{slow}"] - 1)
            row["mlfq_throughput_change"] = m["throughput"] / f["throughput"] - 1
            row["mlfq_jain"], row["fifo_jain"] = m["jain"], f["jain"]
            if "preemptions" in m and m["ok"]:
                row["mlfq_preemptions_per_request"] = m["preemptions"] / m["ok"]
        out.append(row)
    return out


def format_targets(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = []
    for r in rows:
        parts = [f"{r['source']} {r['concurrency']} {r['load']:.0%}:"]
        if "sjf-learned_cut" in r:
            ok = "meets" if r["sjf-learned_cut"] >= 0.2 else "MISSES"
            parts.append(f"SJF(learned) cuts mean wait {r['sjf-learned_cut']:.0%} vs FIFO "
                         f"({ok} >= 20%)")
        if "sjf-oracle_cut" in r:
            parts.append(f"oracle {r['sjf-oracle_cut']:.0%}")
        if "learned_gap_closed" in r:
            parts.append(f"learned/oracle wait x{r['learned_over_oracle']:.2f} "
                         f"({r['learned_gap_closed']:.0%} of the oracle's gain)")
        if "mlfq_fast_wait_cut" in r:
            parts.append(f"MLFQ: fast classes' wait {-r['mlfq_fast_wait_cut']:+.0%}, "
                         f"DistilBERT sojourn {r['mlfq_slow_sojourn_change']:+.0%} "
                         f"(p99 {r['mlfq_slow_p99_sojourn_change']:+.0%}), throughput "
                         f"{r['mlfq_throughput_change']:+.1%}, Jain {r['fifo_jain']:.2f}->"
                         f"{r['mlfq_jain']:.2f}")
            if "mlfq_preemptions_per_request" in r:
                parts.append(f"{r['mlfq_preemptions_per_request']:.2f} preemptions/request")
        lines.append(" ".join(parts[:1]) + " " + "; ".join(parts[1:]))
    return "\n".join(lines)


def plot_waits(waits: pd.DataFrame, path: Path, concurrency: str | None = None) -> Path | None:
    """Waiting-time distributions (CCDF, log time axis) per policy: a row per source, a column
    per load."""
    if waits.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    for src in ("sim", "live"):
        w = waits[waits["source"] == src]
        if w.empty:
            continue
        conc = concurrency if concurrency in set(w["concurrency"]) else w["concurrency"].iloc[0]
        panels.append((src, conc, w[w["concurrency"] == conc]))
    loads = sorted(set(waits["load"]))
    fig, axes = plt.subplots(len(panels), len(loads), figsize=(4.2 * len(loads), 3.4 * len(panels)),
                             squeeze=False, sharey=True)
    floor = 1e-4
    for i, (src, conc, w) in enumerate(panels):
        for j, load in enumerate(loads):
            ax = axes[i][j]
            for policy, g in w[w["load"] == load].groupby("policy", sort=False):
                x = np.sort(np.maximum(g["wait"].to_numpy(dtype=float), floor))
                if not x.size:
                    continue
                ccdf = 1.0 - np.arange(x.size) / x.size
                ax.step(x, ccdf, where="post", color=COLORS.get(str(policy)),
                        label=f"{policy} (mean {x.mean() * 1e3:.0f} ms)")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_ylim(1e-3 if src == "sim" else 5e-3, 1.05)
            ax.set_title(f"{src} {conc}, {load:.0%} load", fontsize=9)
            ax.set_xlabel("waiting time (s)")
            if j == 0:
                ax.set_ylabel("P(wait > t)")
            ax.legend(fontsize=6)
            ax.grid(alpha=0.3, which="both")
    fig.suptitle("mixed workload: waiting-time distribution per policy", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
