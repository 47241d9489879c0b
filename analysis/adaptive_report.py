"""The adaptive demo's report: the printed table and switch timeline, and the timeline figure
(p99 and reward per window of every run, the adaptive run's arm over time).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from servelab.analysis.adaptive_runs import RunResult
from servelab.analysis.adaptive_scores import window_frame
from servelab.core.workload import WorkloadSpec


def format_table(table: pd.DataFrame) -> str:
    lines = [f"{'run':<28} {'thr/s':>6} {'p50 ms':>8} {'p99 ms':>8} {'reward':>7} "
             f"{'errors':>6} {'lost in switches':>16} {'switches':>8}"]
    for _, x in table.iterrows():
        lines.append(f"{x['run']:<28} {x['throughput_rps']:>6.1f} {x['p50_s'] * 1e3:>8.1f} "
                     f"{x['p99_s'] * 1e3:>8.1f} {x['reward']:>7.3f} {x['errors']:>6d} "
                     f"{x['lost_in_switches']:>16d} {x['switches']:>8d}")
    return "\n".join(lines)


def format_timeline(run: RunResult, spec: WorkloadSpec) -> str:
    """One line per switch: client time, phase, from → to, how, and why."""
    starts = spec.phase_starts()
    lines = []
    first = run.meta["switches"][0] if run.meta["switches"] else None
    if first is not None:
        lines.append(f"  start   on {first['to_label']} ({first['seconds']:.1f} s to ready)")
    how = {"inplace": "in place", "warm": "to a warm backend", "new": "a new backend started",
           "failed": "FAILED, stayed"}
    for s in run.switches:
        phase = int(np.searchsorted(starts, s["start_client"], side="right")) - 1
        lines.append(f"  t={s['start_client']:6.1f} s (phase {max(phase, 0) + 1}) "
                     f"{s['from_label']} -> {s['to_label']}: {how.get(s['kind'], s['kind'])}, "
                     f"serving from t={s['t_client']:.1f} s ({s['seconds']:.2f} s)"
                     f"\n      why: {s['reason']}\n      policy: {s['policy_reason']}")
    if not run.switches:
        lines.append("  no switch: the policy kept its first arm throughout")
    if run.meta.get("switching"):
        lines.append("  a switch was still in progress when the workload ended (cancelled)")
    return "\n".join(lines)


def plot_timeline(runs: Sequence[RunResult], spec: WorkloadSpec, window_s: float,
                  path: Path, title: str) -> Path:
    """p99 and reward per window for every run (the adaptive one bold), the adaptive run's arm
    over time, phases shaded and every switch marked with its target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    adaptive = next(r for r in runs if r.kind == "adaptive")
    labels = list(dict.fromkeys(a["label"] for a in adaptive.meta["arms"]))
    fig, axes = plt.subplots(3, 1, figsize=(10, 8.5), sharex=True,
                             gridspec_kw={"height_ratios": [3, 2, 1.4]})
    horizon = spec.total_duration
    for r in runs:
        w = window_frame(r.records, horizon, window_s)
        x = w["t0"].to_numpy() + window_s / 2
        style = {"lw": 2.2, "color": "black", "zorder": 5} if r.kind == "adaptive" else \
            {"lw": 1.0, "alpha": 0.75}
        axes[0].plot(x, w["p99_s"].to_numpy() * 1e3, label=r.name, **style)
        axes[1].plot(x, w["norm"].to_numpy(), label=r.name, **style)
    # The adaptive run's arm, window by window (gateway time -> client time).
    t = [w["t1"] - adaptive.offset_s for w in adaptive.windows]
    arm = [labels.index(adaptive.meta["arms"][w["arm"]]["label"]) if w["arm"] >= 0 else np.nan
           for w in adaptive.windows]
    axes[2].step(t, arm, where="pre", color="black")
    axes[2].set_yticks(range(len(labels)), labels, fontsize=7)
    axes[2].set_ylim(-0.5, len(labels) - 0.5)
    axes[2].set_xlim(0, horizon)
    starts = [*spec.phase_starts(), horizon]
    for ax in axes:
        for k in range(len(starts) - 1):
            if k % 2:
                ax.axvspan(starts[k], starts[k + 1], color="0.92", zorder=0)
        for s in adaptive.switches:  # from the switch's start to the new arm serving
            ax.axvspan(s["start_client"], s["t_client"], color="tab:red", alpha=0.12, lw=0)
            ax.axvline(s["t_client"], color="tab:red", ls="--", lw=0.9)
        ax.grid(alpha=0.3)
    for s in adaptive.switches:
        axes[0].annotate(f"→ {s['to_label']}", (s["t_client"], 1.0),
                         xycoords=("data", "axes fraction"), rotation=90, fontsize=7,
                         va="top", ha="right", color="tab:red")
    phases = spec.effective_phases()
    for k, p in enumerate(phases):
        mix = ", ".join(f"{m}" for m in (p.mix or {}))
        axes[0].text((starts[k] + starts[k + 1]) / 2, 0.02, f"{mix} {p.arrival.mean_rate:g}/s",
                     transform=axes[0].get_xaxis_transform(), ha="center", fontsize=7,
                     color="0.35")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("p99 per window (ms)")
    axes[0].legend(fontsize=7, loc="upper left")
    axes[1].set_ylabel("reward / offered")
    axes[2].set_ylabel("adaptive arm", fontsize=8)
    axes[2].set_xlabel("seconds since the first intended send")
    axes[0].set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
