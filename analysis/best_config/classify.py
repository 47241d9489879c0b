"""The classifiers, cross-validated on the simulated table, and what drives them.

Three learners from workload features to the best configuration: a shallow **decision tree**
(its splits are the explanation, :mod:`.rules`), a **random forest** and **gradient boosting**
(histogram-based), next to the **majority** baseline (always the most common training label).
Each is scored out of fold (shuffled K-fold) on

* ``accuracy`` — the predicted configuration is the simulated best;
* ``setup_accuracy`` — it is of the best's setup (threads / processes / async-*), pool size
  aside: "which concurrency model";
* ``share`` — the reward the predicted configuration gets over the best's (near-ties cost
  almost nothing, a wrong pick under overload a lot); its 10th percentile and the rate of picks
  within 2% of the best (``near``).

:func:`permutation_importance` shuffles one feature at a time in each held-out fold and
measures the drop of accuracy and of reward share.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.model_selection import KFold
from sklearn.tree import DecisionTreeClassifier

from servelab.analysis.best_config.dataset import keys_of, reward_columns, shares
from servelab.analysis.best_config.space import setup_of

NEAR = 0.98
"""A pick "within 2%" earns at least this share of the best reward."""


class Majority:
    """Always the most common training label."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> Majority:
        vals, counts = np.unique(y, return_counts=True)
        self.classes_ = vals
        self.label_ = vals[int(np.argmax(counts))]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(X), self.label_, dtype=object)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = np.zeros((len(X), len(self.classes_)))
        p[:, list(self.classes_).index(self.label_)] = 1.0
        return p


def models(seed: int = 0, trees: int = 100) -> dict[str, Callable[[], Any]]:
    """Fresh learners by name (the tree depth is kept small enough to read; ``trees``: the
    forest's size and the boosting's rounds)."""
    return {
        "tree": lambda: DecisionTreeClassifier(max_depth=4, min_samples_leaf=4,
                                               random_state=seed),
        "forest": lambda: RandomForestClassifier(n_estimators=trees, min_samples_leaf=1,
                                                 random_state=seed, n_jobs=1),
        "boosting": lambda: HistGradientBoostingClassifier(
            max_iter=max(trees * 3 // 5, 5), learning_rate=0.1, max_depth=3, early_stopping=False,
            random_state=seed),
        "majority": Majority,
    }


@dataclass
class Data:
    X: np.ndarray
    y: np.ndarray
    rewards: np.ndarray       # workloads x configurations
    keys: list[str]           # the configurations, reward column order
    features: list[str]

    @classmethod
    def of(cls, samples: pd.DataFrame, features: Sequence[str]) -> Data:
        return cls(X=samples[list(features)].to_numpy(dtype=float),
                   y=samples["best"].to_numpy(dtype=object),
                   rewards=samples[reward_columns(samples)].to_numpy(dtype=float),
                   keys=keys_of(samples), features=list(features))

    def index(self, labels: np.ndarray) -> np.ndarray:
        pos = {k: i for i, k in enumerate(self.keys)}
        return np.array([pos[str(x)] for x in labels], dtype=int)


def folds(n: int, k: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    if n < 4:
        raise ValueError(f"cross-validation needs at least 4 workloads, got {n}")
    kf = KFold(n_splits=min(k, n), shuffle=True, random_state=seed)
    return list(kf.split(np.zeros(n)))


def score(data: Data, pred: np.ndarray, rows: np.ndarray | None = None) -> dict[str, float]:
    rows = np.arange(len(data.y)) if rows is None else rows
    y = data.y[rows]
    sh = shares(data.rewards[rows], data.index(pred))
    return {
        "accuracy": float(np.mean(pred == y)),
        "setup_accuracy": float(np.mean([setup_of(str(a)) == setup_of(str(b))
                                         for a, b in zip(pred, y, strict=True)])),
        "share": float(sh.mean()),
        "share_p10": float(np.quantile(sh, 0.1)),
        "near": float(np.mean(sh >= NEAR)),
        "n": float(len(rows)),
    }


def cross_validate(data: Data, k: int = 5, seed: int = 0, names: Sequence[str] | None = None,
                   trees: int = 100) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Out-of-fold scores per learner (one row each) and the out-of-fold predictions."""
    learners = models(seed, trees)
    names = list(names) if names is not None else list(learners)
    preds: dict[str, np.ndarray] = {}
    rows = []
    for name in names:
        pred = np.empty(len(data.y), dtype=object)
        for train, test in folds(len(data.y), k, seed):
            m = learners[name]().fit(data.X[train], data.y[train])
            pred[test] = m.predict(data.X[test])
        preds[name] = pred
        rows.append({"model": name, **score(data, pred)})
    return pd.DataFrame(rows), preds


GROUPS: dict[str, tuple[str, ...]] = {
    "model mix": ("share_",), "input sizes": ("size_",), "CPU per request": ("service_s",),
    "load": ("rate", "cpu_load"), "burstiness": ("burst",),
}
"""Feature groups shuffled together: features that stand in for each other (the mix and the
mean CPU per request, the rate and the CPU load) hide each other's importance one by one."""


def feature_groups(features: Sequence[str]) -> dict[str, list[str]]:
    out = {g: [f for f in features if any(f == p or (p.endswith("_") and f.startswith(p))
                                          for p in pre)] for g, pre in GROUPS.items()}
    return {g: fs for g, fs in out.items() if fs}


def permutation_importance(data: Data, name: str = "forest", k: int = 5, repeats: int = 3,
                           seed: int = 0, trees: int = 100) -> pd.DataFrame:
    """Per feature (``kind`` "feature") and per group of features shuffled together
    (``kind`` "group", :data:`GROUPS`), the mean drop (and its spread over folds x repeats) of
    out-of-fold accuracy and reward share when only those columns are shuffled (rows permuted
    together) within the held-out fold."""
    rng = np.random.default_rng(seed)
    learner = models(seed, trees)[name]
    sets = {**{f: ("feature", [f]) for f in data.features},
            **{g: ("group", fs) for g, fs in feature_groups(data.features).items()}}
    drops: dict[str, list[tuple[float, float]]] = {n: [] for n in sets}
    for train, test in folds(len(data.y), k, seed):
        m = learner().fit(data.X[train], data.y[train])
        base = score(data, m.predict(data.X[test]), test)
        for n, (_, fs) in sets.items():
            cols = [data.features.index(f) for f in fs]
            for _ in range(repeats):
                Xp = data.X[test].copy()
                Xp[:, cols] = Xp[rng.permutation(len(test))][:, cols]
                s = score(data, m.predict(Xp), test)
                drops[n].append((base["accuracy"] - s["accuracy"], base["share"] - s["share"]))
    rows = []
    for n, d in drops.items():
        a = np.array(d)
        rows.append({"feature": n, "kind": sets[n][0], "columns": ",".join(sets[n][1]),
                     "accuracy_drop": float(a[:, 0].mean()),
                     "accuracy_drop_sd": float(a[:, 0].std()),
                     "share_drop": float(a[:, 1].mean()), "share_drop_sd": float(a[:, 1].std())})
    return pd.DataFrame(rows).sort_values(["kind", "accuracy_drop"], ascending=[False, False],
                                          ignore_index=True)


def fit(data: Data, name: str, seed: int = 0, trees: int = 100) -> Any:
    """``name`` fitted on the whole table."""
    return models(seed, trees)[name]().fit(data.X, data.y)


def pick_among(model: Any, X: np.ndarray, allowed: Sequence[Sequence[str]]) -> list[str | None]:
    """Per row, the class the model ranks highest among that row's ``allowed`` configurations
    (the ones measured there); None where none of them is a class the model knows."""
    proba = model.predict_proba(X)
    classes = [str(c) for c in model.classes_]
    out: list[str | None] = []
    for p, ok in zip(proba, allowed, strict=True):
        cand = [(p[classes.index(c)], -i, c) for i, c in enumerate(ok) if c in classes]
        out.append(max(cand)[2] if cand else None)
    return out
