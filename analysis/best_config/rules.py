"""The decision tree's leaves as rules a systems reader can check.

Each leaf becomes ``if <conditions> -> <configuration>``: the conditions along its path merged
per feature into one interval, in the features' own words (:func:`.features.label`), with the
leaf's support (workloads) and purity (the share of them whose best it is), and one line on why
that setup wins there, in OS terms (:data:`WHY`).  The largest leaves come first: they are the
tree's top splits in practice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from servelab.analysis.best_config.features import label, shown
from servelab.analysis.best_config.space import setup_of

WHY: dict[str, str] = {
    "threads": "one interpreter: no IPC copy and a cheap hand-off; enough while the "
               "model's kernels release the GIL (long torch ops), not when Python work holds it",
    "processes": "a GIL per worker process: Python work runs on every core, each request pays "
                 "an IPC copy and the pool its memory",
    "async-inline": "the event loop runs inference itself: no hand-off or IPC, nothing overlaps",
    "async-thread": "an event loop in front of a thread pool: a cheap front end, workers still "
                    "share the GIL",
    "async-process": "an event loop in front of a process pool: a GIL per worker behind a cheap "
                     "front end, plus IPC",
}


def _fmt(x: float) -> str:
    return f"{x:.2f}" if abs(x) < 10 else f"{x:.0f}"


def leaf_rules(tree: Any, features: Sequence[str]) -> list[dict[str, Any]]:
    """One dict per leaf: ``conditions`` (feature -> (low, high], None for unbounded),
    ``text``, ``config``, ``samples``, ``purity``, ``why``, sorted by support."""
    t = tree.tree_
    classes = [str(c) for c in tree.classes_]
    out: list[dict[str, Any]] = []

    def walk(node: int, bounds: dict[str, list[float | None]]) -> None:
        if t.children_left[node] == t.children_right[node]:  # a leaf
            counts = t.value[node][0]
            k = int(np.argmax(counts))
            conf = classes[k]
            out.append({
                "conditions": {f: tuple(b) for f, b in bounds.items()},
                "config": conf, "samples": int(t.n_node_samples[node]),
                "purity": float(counts[k] / counts.sum()) if counts.sum() > 0 else 0.0,
                "why": WHY.get(setup_of(conf), ""),
            })
            return
        f = features[int(t.feature[node])]
        thr = float(t.threshold[node])
        lo, hi = bounds.get(f, [None, None])
        left = dict(bounds)
        left[f] = [lo, thr if hi is None else min(hi, thr)]
        walk(int(t.children_left[node]), left)
        right = dict(bounds)
        right[f] = [thr if lo is None else max(lo, thr), hi]
        walk(int(t.children_right[node]), right)

    walk(0, {})
    for r in out:
        r["text"] = rule_text(r)
    return sorted(out, key=lambda r: -r["samples"])


def condition_text(feature: str, low: float | None, high: float | None) -> str:
    """The interval in the feature's own words and unit (:func:`.features.shown`)."""
    name = label(feature)
    low = None if low is None else shown(feature, low)
    high = None if high is None else shown(feature, high)
    if low is None and high is not None:
        return f"{name} <= {_fmt(high)}"
    if high is None and low is not None:
        return f"{name} > {_fmt(low)}"
    return f"{_fmt(low or 0.0)} < {name} <= {_fmt(high or 0.0)}"


def rule_text(rule: dict[str, Any]) -> str:
    conds = [condition_text(f, lo, hi) for f, (lo, hi) in rule["conditions"].items()]
    when = " and ".join(conds) if conds else "always"
    return (f"if {when} -> {rule['config']} ({rule['samples']} workloads, "
            f"{rule['purity']:.0%} of them best there): {rule['why']}")


def top_split(tree: Any, features: Sequence[str]) -> str:
    """The root split, in words."""
    t = tree.tree_
    if t.children_left[0] == t.children_right[0]:
        return "no split (one configuration wins everywhere)"
    return condition_text(features[int(t.feature[0])], None, float(t.threshold[0]))
