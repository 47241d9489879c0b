"""The whole analysis: simulate the training set, cross-validate, explain, check live, write.

:func:`simulate_samples` is the slow half (minutes: every workload x configuration simulated,
resumable in its work folder); :func:`analyse` the fast one (seconds: fits, scores, rules, the
live check); :func:`write` puts tables, figures and ``summary.json`` in a run folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from servelab.analysis.best_config import classify as C
from servelab.analysis.best_config import live as L
from servelab.analysis.best_config import plots as P
from servelab.analysis.best_config.dataset import build_samples, keys_of
from servelab.analysis.best_config.features import FEATURES_VERSION, feature_names, label
from servelab.analysis.best_config.rules import leaf_rules, top_split
from servelab.analysis.best_config.space import Draw, config_key, default_configs, draw_workloads
from servelab.core.profile import Profile
from servelab.sim.executors import Executor

LEARNERS = ("tree", "forest", "boosting")
DECISIVE = 0.05
"""A workload whose best beats the runner-up by at least this share is "decisive"."""


@dataclass(frozen=True)
class Settings:
    samples: int
    draw: Draw = field(default_factory=Draw)
    schedulers: tuple[str, ...] = ("fifo",)
    keys: tuple[str, ...] = ()
    """Restrict the configurations to these keys (empty: all of :func:`default_configs`)."""
    seed: int = 0
    folds: int = 5

    def configs(self, profile: Profile) -> list[Any]:
        models = [m for m in profile.models if "+" not in m]
        cfgs = default_configs(self.schedulers, models)
        if self.keys:
            cfgs = [c for c in cfgs if config_key(c) in self.keys]
            if not cfgs:
                raise ValueError(f"no configuration has a key among {list(self.keys)}")
        return cfgs

    def meta(self) -> dict[str, Any]:
        """What a cached training set must match (JSON-plain: compared with its stored copy)."""
        import json

        return dict(json.loads(json.dumps({
            "samples": self.samples, "draw": asdict(self.draw), "seed": self.seed,
            "schedulers": list(self.schedulers), "keys": list(self.keys),
            "features": FEATURES_VERSION})))


QUICK = Settings(samples=100, draw=Draw(requests=250, duration_s=(4.0, 20.0)))
FULL = Settings(samples=500, draw=Draw(requests=600, duration_s=(8.0, 60.0)))


def newest_profile(root: Path) -> Path | None:
    """The most recently written calibrated profile under ``root`` (``results/profiles``),
    tiny-model profiles only if there is no other."""
    found = [p for p in Path(root).glob("*.json") if not p.name.endswith(".summary.json")]
    full = [p for p in found if "tiny" not in p.stem]
    pool = full or found
    return max(pool, key=lambda p: p.stat().st_mtime) if pool else None


def feature_models(profile: Profile) -> list[str]:
    return sorted(m for m in profile.models if "+" not in m)


def simulate_samples(profile: Profile, settings: Settings, executor: Executor, work: Path,
                     progress: bool = True) -> pd.DataFrame:
    models = feature_models(profile)
    workloads = draw_workloads(settings.samples, profile, settings.seed, settings.draw, models)
    return build_samples(workloads, settings.configs(profile), profile, executor, work, models,
                         progress)


@dataclass
class Analysis:
    samples: pd.DataFrame
    features: list[str]
    cv: pd.DataFrame
    preds: dict[str, np.ndarray]
    best_learner: str
    importance: pd.DataFrame
    rules: list[dict[str, Any]]
    root_split: str
    live: pd.DataFrame
    live_summary: dict[str, Any]
    answer: str = ""
    summary: dict[str, Any] = field(default_factory=dict)

    def confusion(self) -> pd.DataFrame:
        return P.confusion(self.samples["best"].astype(str).tolist(),
                           [str(x) for x in self.preds[self.best_learner]],
                           keys_of(self.samples))

    def share_table(self) -> pd.DataFrame:
        """Chooser x (where: sim CV / live held-out): accuracy and shares, long form."""
        rows = [{"where": "sim CV", "chooser": r["model"], "accuracy": r["accuracy"],
                 "share": r["share"], "share_p10": r["share_p10"]}
                for r in self.cv.to_dict("records")]
        ls = self.live_summary
        for name in (*LEARNERS, "simulator", "majority", "random"):
            if name in ls:
                rows.append({"where": "live held-out", "chooser": name,
                             "accuracy": ls[name]["accuracy"], "share": ls[name]["share"],
                             "share_p10": ls[name].get("share_p10", np.nan)})
        return pd.DataFrame(rows)


def analyse(samples: pd.DataFrame, profile: Profile, live_points: pd.DataFrame,
            seed: int = 0, k: int = 5, trees: int = 100, repeats: int = 3) -> Analysis:
    """Cross-validate the learners on ``samples``, explain the tree and the forest, and check
    every learner on the live decisions of ``live_points`` (may be empty).  ``trees``: the
    forest's size; ``repeats``: shuffles per feature and fold for the importances.  The learners run
    on one OpenMP thread: on two shared cores gradient boosting's thread pool spun 20x slower."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _analyse(samples, profile, live_points, seed, k, trees, repeats)


def _analyse(samples: pd.DataFrame, profile: Profile, live_points: pd.DataFrame,
             seed: int, k: int, trees: int, repeats: int) -> Analysis:
    models = feature_models(profile)
    features = [f for f in feature_names(profile, models) if f in samples.columns]
    data = C.Data.of(samples, features)
    cv, preds = C.cross_validate(data, k, seed, trees=trees)
    decisive = samples["margin"].to_numpy() >= DECISIVE
    cv["decisive_accuracy"] = [float(np.mean(preds[m][decisive] == data.y[decisive]))
                               if decisive.any() else np.nan for m in cv["model"]]
    learned = cv[cv["model"].isin(LEARNERS)]
    best = str(learned.sort_values(["share", "accuracy"], ascending=False)["model"].iloc[0])
    imp = C.permutation_importance(data, "forest", k, repeats, seed, trees)
    tree = C.fit(data, "tree", seed)
    rules = leaf_rules(tree, features)
    live, live_sum = _live(data, samples, profile, live_points, models, features, seed, trees)
    a = Analysis(samples, features, cv, preds, best, imp, rules, top_split(tree, features),
                 live, live_sum)
    a.answer = answer(a)
    return a


def _live(data: C.Data, samples: pd.DataFrame, profile: Profile, points: pd.DataFrame,
          models: Sequence[str], features: Sequence[str], seed: int,
          trees: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    dec = L.decisions(points, data.keys)
    if dec.empty:
        return dec, {"decisions": 0}
    feats = L.decision_features(dec, profile, models)
    majority = str(samples["best"].value_counts().index[0])
    frames = []
    out: dict[str, Any] = {}
    for name in LEARNERS:
        ev = L.evaluate(dec, feats, C.fit(data, name, seed, trees), majority, features)
        s = L.summary(ev)
        out[name] = {**s["classifier"], "share_p10": float(ev["share"].quantile(0.1))}
        frames.append(ev.assign(learner=name))
        out.update({k: v for k, v in s.items() if k != "classifier"})
    return pd.concat(frames, ignore_index=True), out


def decisive(accuracy: float) -> str:
    """The accuracy on decisive workloads, in words (there may be none)."""
    if accuracy != accuracy:  # NaN: no workload's best led by DECISIVE
        return f"no workload where the best leads by >= {DECISIVE:.0%}"
    return f"{accuracy:.0%} where the best leads by >= {DECISIVE:.0%}"


def answer(a: Analysis) -> str:
    """The section's one sentence, with its numbers."""
    cv = a.cv.set_index("model")
    b, maj = cv.loc[a.best_learner], cv.loc["majority"]
    groups = a.importance[a.importance["kind"] == "group"]
    top = [f"the {g}" for g in groups["feature"].head(2)] or \
        [label(f) for f in a.importance["feature"].head(2)]
    majority = str(a.samples["best"].value_counts().index[0])
    s = (f"To within a few percent of the best reward: from rate, model mix, input sizes and "
         f"offered CPU load a {a.best_learner} earns {b['share']:.1%} of the best reward on "
         f"held-out simulated workloads (exactly the best configuration {b['accuracy']:.0%}, "
         f"{decisive(b['decisive_accuracy'])}, the right "
         f"setup {b['setup_accuracy']:.0%}; always {majority}: {maj['share']:.1%})")
    ls = a.live_summary
    if ls.get("decisions"):
        lv = ls[a.best_learner]
        s += (f" and {lv['share']:.1%} of the live-best reward on {ls['decisions']} held-out "
              f"live decisions (exactly right {lv['accuracy']:.0%}; simulating every candidate "
              f"{ls['simulator']['share']:.1%}, a random pick {ls['random']['share']:.1%})")
    lead = a.rules[0] if a.rules else None
    tail = (f"; its largest leaf sends {lead['samples']} workloads to {lead['config']}"
            if lead else "")
    return s + (f"; {' and '.join(top[:2])} drive it (the tree's first split: "
                f"{a.root_split}{tail}).")


def write(a: Analysis, out: Path, command: str, extra: dict[str, Any] | None = None,
          prefix: str = "") -> dict[str, Path]:
    """Tables (Parquet), figures (PNG) and ``summary.json`` under ``out``; returns the figure
    paths by name (``confusion``, ``importance``, ``shares``)."""
    from servelab.results import write_json, write_parquet

    out.mkdir(parents=True, exist_ok=True)
    write_parquet(out / f"{prefix}samples.parquet", a.samples)
    write_parquet(out / f"{prefix}cv.parquet", a.cv)
    write_parquet(out / f"{prefix}importance.parquet", a.importance)
    if not a.live.empty:
        write_parquet(out / f"{prefix}live.parquet", live_table(a.live))
    figs = figures(a, out, prefix)
    a.summary = {
        "kind": "best-config", "command": command, "answer": a.answer,
        "samples": len(a.samples), "features": a.features,
        "configurations": keys_of(a.samples),
        "labels": a.samples["best"].value_counts().to_dict(),
        "margin": {"median": float(a.samples["margin"].median()),
                   "decisive_share": float((a.samples["margin"] >= DECISIVE).mean())},
        "cv": a.cv.to_dict("records"), "best_learner": a.best_learner,
        "importance": a.importance.to_dict("records"),
        "rules": [{k: v for k, v in r.items() if k != "conditions"} for r in a.rules],
        "root_split": a.root_split, "live": a.live_summary,
        "files": {k: v.name for k, v in figs.items()}, **(extra or {}),
    }
    write_json(out / f"{prefix}summary.json", a.summary)
    return figs


def figures(a: Analysis, out: Path, prefix: str = "") -> dict[str, Path]:
    """The three PNGs under ``out`` (``<prefix>confusion.png`` ...), by name."""
    acc = a.cv.set_index("model").loc[a.best_learner, "accuracy"]
    return {
        "confusion": P.plot_confusion(
            a.confusion(), out / f"{prefix}confusion.png",
            f"{a.best_learner}, {acc:.0%} out of fold over {len(a.samples)} simulated workloads"),
        "importance": P.plot_importance(
            a.importance, out / f"{prefix}importance.png",
            "random forest: permutation importance (held-out folds)"),
        "shares": P.plot_shares(
            {w: g for w, g in a.share_table().groupby("where", sort=False)},
            out / f"{prefix}shares.png", "share of the best reward the chosen configuration gets"),
    }


def live_table(live: pd.DataFrame) -> pd.DataFrame:
    """The live decisions as a flat table (candidates joined by commas)."""
    return live.assign(candidates=live["candidates"].map(",".join))
