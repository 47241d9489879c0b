"""One PNG per measurement (matplotlib, Agg): the figure each claim of :mod:`.claims` refers
to, with its spread (min-max over repeats, or the interquartile range over samples).  The
frames' seconds are drawn in the unit each axis names (ms, us, ns)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MS = 1e3


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _bars(ax: Any, df: pd.DataFrame, key: str, col: str, scale: float = 1.0,
          order: list[str] | None = None) -> None:
    g = df.groupby(key, sort=False)[col]
    med, lo, hi = g.median() * scale, g.min() * scale, g.max() * scale
    keys = order or list(med.index)
    x = np.arange(len(keys))
    ax.bar(x, med[keys], yerr=[med[keys] - lo[keys], hi[keys] - med[keys]], capsize=3)
    ax.set_xticks(x, keys, rotation=20, ha="right", fontsize=8)


def _ctxsw(df: pd.DataFrame, fig: Any) -> None:
    axes = fig.subplots(1, 3)
    setups = list(dict.fromkeys(df["setup"]))
    x = np.arange(len(setups))
    g = df.groupby("setup", sort=False)
    for ax, cols, title in ((axes[0], ("vcsw_per_req", "ivcsw_per_req"), "switches / request"),):
        for k, c in enumerate(cols):
            med, lo, hi = g[c].median()[setups], g[c].min()[setups], g[c].max()[setups]
            ax.bar(x + 0.4 * k - 0.2, med, 0.4, yerr=[med - lo, hi - med], capsize=2,
                   label="voluntary" if k == 0 else "involuntary")
        ax.set_xticks(x, setups, rotation=25, ha="right", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    ax = axes[1]
    for k, (c, lab) in enumerate((("cpu_s_per_req", "CPU"), ("wall_s_per_req", "wall"))):
        med, lo, hi = (MS * g[c].median()[setups], MS * g[c].min()[setups],
                       MS * g[c].max()[setups])
        ax.bar(x + 0.4 * k - 0.2, med, 0.4, yerr=[med - lo, hi - med], capsize=2, label=lab)
    ax.set_xticks(x, setups, rotation=25, ha="right", fontsize=8)
    ax.set_title("ms / request: CPU (all processes) vs wall", fontsize=9)
    ax.legend(fontsize=7)
    _bars(axes[2], df, "setup", "sys_s_per_req", MS, order=setups)
    axes[2].set_title("system (kernel) CPU ms / request", fontsize=9)


def _ipc(df: pd.DataFrame, fig: Any) -> None:
    ax = fig.subplots()
    for method, g in df.groupby("method"):
        q = g.groupby("bytes")["one_way_s"].quantile([0.25, 0.5, 0.75]).unstack() * 1e6
        ax.errorbar(q.index, q[0.5], yerr=[q[0.5] - q[0.25], q[0.75] - q[0.5]], marker="o",
                    capsize=2, label=method)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("payload bytes")
    ax.set_ylabel("one-way time, us")
    ax.legend()


def _samples(col: str, scale: float, label: str) -> Callable[[pd.DataFrame, Any], None]:
    def plot(df: pd.DataFrame, fig: Any) -> None:
        ax = fig.subplots()
        g = df.groupby("kind", sort=False)[col]
        q = g.quantile([0.25, 0.5, 0.75]).unstack() * scale
        keys = list(q.index)
        ax.bar(keys, q[0.5], yerr=[q[0.5] - q[0.25], q[0.75] - q[0.5]], capsize=3)
        ax.set_yscale("log")
        ax.set_ylabel(label)
    return plot


def _memory(df: pd.DataFrame, fig: Any) -> None:
    ax = fig.subplots()
    for freeze, g in df.groupby("freeze"):
        m = g.groupby("stage", sort=False)[["uss_mb", "pss_mb"]].mean()
        tag = "gc.freeze()" if freeze else "no freeze"
        ax.plot(m.index, m["uss_mb"], marker="o", label=f"USS ({tag})")
        ax.plot(m.index, m["pss_mb"], marker="s", ls="--", label=f"PSS ({tag})")
    ax.set_ylabel("MiB per worker")
    ax.set_xlabel("worker stage after fork")
    ax.legend(fontsize=7)


def _locks(df: pd.DataFrame, fig: Any) -> None:
    a, b = fig.subplots(1, 2)
    _bars(a, df, "mode", "lock_wait_p99_s", MS)
    a.set_title("lock wait p99, ms", fontsize=9)
    _bars(b, df, "mode", "p99_s", MS)
    b.set_title("client p99 latency, ms", fontsize=9)


def _deadlock(df: pd.DataFrame, fig: Any) -> None:
    ax = fig.subplots()
    colors = ["tab:red" if s >= 500 else "tab:orange" for s in df["status"]]
    ax.barh(df["request"], df["seconds"], color=colors)
    for i, (s, t) in enumerate(zip(df["status"], df["seconds"], strict=True)):
        ax.text(t, i, f" HTTP {s}", va="center", fontsize=8)
    ax.axvline(float(df["watchdog_s"].iloc[0]), ls=":", color="k", label="--watchdog-s")
    ax.set_xlabel("seconds to the answer")
    ax.legend(fontsize=7)


def _gil(df: pd.DataFrame, fig: Any) -> None:
    ax = fig.subplots()
    two = df[df["workers"] == 2]
    keys = [f"{v}\n{m}" for v, m in zip(two["variant"], two["mode"], strict=True)]
    two = two.assign(key=keys)
    _bars(ax, two, "key", "speedup")
    ax.axhline(2.0, ls=":", color="k")
    ax.set_ylabel("speedup at 2 workers over 1")


def _sched(df: pd.DataFrame, fig: Any) -> None:
    a, b = fig.subplots(1, 2)
    _bars(a, df, "policy", "wait_max_distilbert", MS)
    a.set_title("slow class (DistilBERT): longest wait, ms", fontsize=9)
    _bars(b, df, "policy", "wait_mean_mobilenet_v2", MS)
    b.set_title("fast class (MobileNetV2): mean wait, ms", fontsize=9)


def _perf(df: pd.DataFrame, fig: Any) -> None:
    ax = fig.subplots()
    ax.barh(df["event"], df["supported"].astype(int),
            color=["tab:green" if s else "tab:gray" for s in df["supported"]])
    for i, r in enumerate(df.itertuples()):
        ax.text(0.02, i, f"{r.value:.0f}" if r.supported else str(r.reason), va="center",
                fontsize=8, color="w" if r.supported else "k")
    ax.set_xticks([0, 1], ["not counted", "counted"])


def _cache(df: pd.DataFrame, fig: Any) -> None:
    ax = fig.subplots()
    g = df.groupby("bytes")["s_per_read"]
    med, lo, hi = 1e9 * g.median(), 1e9 * g.min(), 1e9 * g.max()
    ax.errorbar(med.index, med, yerr=[med - lo, hi - med], marker="o", capsize=2)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("working set, bytes")
    ax.set_ylabel("ns per random read")


def _affinity(df: pd.DataFrame, fig: Any) -> None:
    a, b = fig.subplots(1, 2)
    _bars(a, df, "condition", "p99_s", MS)
    a.set_title("p99 latency, ms", fontsize=9)
    _bars(b, df, "condition", "throughput")
    b.set_title("throughput, req/s", fontsize=9)


PLOTS: dict[str, Callable[[pd.DataFrame, Any], None]] = {
    "ctxsw": _ctxsw, "ipc": _ipc, "spawn": _samples("seconds", 1e6, "start + join, us"),
    "pingpong": _samples("switch_s", 1e6, "us per switch"), "memory": _memory,
    "locks": _locks, "deadlock": _deadlock, "gil": _gil, "sched": _sched, "perf": _perf,
    "cache": _cache, "affinity": _affinity,
}


def plot(name: str, df: pd.DataFrame, path: Path, title: str = "", dpi: int = 110) -> Path:
    """Write measurement ``name``'s figure to ``path`` (PNG)."""
    plt = _plt()
    wide = name in ("ctxsw", "locks", "sched", "affinity")
    fig = plt.figure(figsize=(11 if wide else 6.5, 4))
    PLOTS[name](df, fig)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
