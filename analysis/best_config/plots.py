"""The three figures: the confusion matrix, the permutation importances, the reward shares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from servelab.analysis.best_config.features import label


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    from servelab.results import save_figure

    save_figure(fig, path)
    _pyplot().close(fig)
    return path


def confusion(y: Sequence[str], pred: Sequence[str], keys: Sequence[str]) -> pd.DataFrame:
    """Counts: rows the best configuration, columns the predicted one (only keys that occur)."""
    used = [k for k in keys if k in set(y) | set(pred)]
    m = pd.crosstab(pd.Series(list(y), name="best"), pd.Series(list(pred), name="predicted"))
    return m.reindex(index=used, columns=used, fill_value=0)


def plot_confusion(m: pd.DataFrame, path: Path, title: str) -> Path:
    plt = _pyplot()
    n = len(m)
    fig, ax = plt.subplots(figsize=(1.6 + 0.55 * n, 1.2 + 0.5 * n))
    ax.imshow(m.to_numpy(), cmap="Blues")
    ax.set_xticks(range(n), m.columns, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), m.index, fontsize=8)
    for i in range(n):
        for j in range(n):
            v = int(m.iat[i, j])
            if v:
                ax.text(j, i, str(v), ha="center", va="center", fontsize=8,
                        color="white" if v > m.to_numpy().max() / 2 else "black")
    ax.set_xlabel("predicted (out of fold)")
    ax.set_ylabel("simulated best")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_importance(imp: pd.DataFrame, path: Path, title: str) -> Path:
    plt = _pyplot()
    d = imp.iloc[::-1]
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.5 + 0.35 * len(d)), sharey=True)
    kinds = d["kind"] if "kind" in d else ["feature"] * len(d)
    ylabels = [f"[{f}]" if k == "group" else label(f) for f, k in zip(d["feature"], kinds,
                                                                     strict=True)]
    for ax, col, name in ((axes[0], "accuracy_drop", "accuracy"),
                          (axes[1], "share_drop", "reward share")):
        colors = ["#ff7f0e" if k == "group" else "#1f77b4" for k in kinds]
        ax.barh(ylabels, d[col], xerr=d[f"{col}_sd"], color=colors, ecolor="0.4")
        ax.axvline(0, color="k", lw=0.6)
        ax.set_xlabel(f"drop in out-of-fold {name} when shuffled")
    axes[0].tick_params(axis="y", labelsize=8)
    fig.suptitle(title + " (orange, [bracketed]: a group shuffled together)", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_shares(groups: Mapping[str, pd.DataFrame], path: Path, title: str) -> Path:
    """One panel per group (``sim CV``, ``live held-out``): each chooser's mean reward share
    (bar) and accuracy (dot), from frames with columns ``chooser``, ``share``, ``accuracy``,
    ``share_p10``."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 3.8), squeeze=False)
    for ax, (name, df) in zip(axes[0], groups.items(), strict=True):
        x = np.arange(len(df))
        ax.bar(x, df["share"], color="#2ca02c", label="mean share of the best reward")
        for xi, v in zip(x, df["share"], strict=True):
            ax.text(xi, 0.03, f"{v:.1%}", ha="center", va="bottom", fontsize=8, color="white")
        if "share_p10" in df:
            ax.plot(x, df["share_p10"], "v", color="#d62728", label="10th percentile share")
        ax.plot(x, df["accuracy"], "o", color="k", label="accuracy (exact best)")
        ax.set_xticks(x, df["chooser"], rotation=20, fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title(name, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
