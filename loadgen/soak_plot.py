"""The soak's figure: goodput and offered load, the ok p99, the server's RSS and the 503 share
per window over time, the kill -9 and the SIGTERM marked on every panel."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

MARKS = {"kill": ("kill -9 worker", "tab:red"), "sigterm": ("SIGTERM", "tab:purple"),
         "crash": ("crash", "black")}


def plot_soak(win: pd.DataFrame, events: Sequence[Mapping[str, Any]], capacity: Mapping[str, Any],
              path: Path, title: str = "") -> Path:
    """Write the four-panel PNG to ``path``; returns it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(10, 11), sharex=True)
    t = win["t"]
    ax = axes[0]
    ax.plot(t, win["offered"], label="offered", color="tab:gray", lw=0.8)
    ax.plot(t, win["goodput"], label="goodput (ok/s)", color="tab:green", lw=1)
    ax.plot(t, win["rejected_503"], label="503/s", color="tab:orange", lw=0.8)
    if win["failed"].any():
        ax.plot(t, win["failed"], label="failed/s (not ok, not 503)", color="tab:red", lw=0.8)
    ax.axhline(capacity["rps"], ls="--", color="tab:green", lw=0.7, label="capacity")
    ax.axhline(0.9 * capacity["rps"], ls=":", color="tab:green", lw=0.7, label="90% capacity")
    ax.set_ylabel("req/s")
    ax.legend(loc="upper right", fontsize=7, ncol=3)
    ax = axes[1]
    ax.plot(t, win["p99_s"] * 1e3, color="tab:blue", lw=0.8, label="ok p99")
    ax.axhline(2 * capacity["p99_s"] * 1e3, ls="--", color="tab:blue", lw=0.7,
               label="2x p99 at capacity")
    ax.set_ylabel("p99 (ms)")
    ax.legend(loc="upper right", fontsize=7)
    ax = axes[2]
    ax.plot(t, win["rss_total_mb"], label="server + pool", color="tab:brown", lw=0.8)
    ax.plot(t, win["rss_server_mb"], label="server process", color="tab:olive", lw=0.8)
    ax.set_ylabel("RSS (MiB)")
    ax.legend(loc="upper right", fontsize=7)
    ax = axes[3]
    ax.plot(t, win["share_503"] * 100, color="tab:orange", lw=0.8)
    ax.set_ylabel("503 share of sent (%)")
    ax.set_xlabel("seconds since the soak's start")
    for e in events:
        if e["kind"] in MARKS:
            label, color = MARKS[e["kind"]]
            for a in axes:
                a.axvline(e["t"], color=color, lw=1, ls="--")
            axes[0].annotate(label, (e["t"], axes[0].get_ylim()[1]), fontsize=7, color=color,
                             ha="right", va="top", rotation=90)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
