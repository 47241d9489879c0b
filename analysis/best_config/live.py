"""The held-out check: live measurements the classifier never saw.

``servelab validate`` stores live points (``results/validate-*/points.parquet``): per workload
and load level every configuration of its grid served for real at one common rate.  Each
(run, workload, load) is one **decision**: the live-best configuration among those measured
(repeats averaged), the classifier's pick among the same ones (:func:`classify.pick_among`) from
the features of the very workload served (:func:`servelab.analysis.validate.grid.at_rate`), and
what the pick earned as a share of the live-best reward.  Baselines on the same decisions: the
simulator's own top pick (every candidate simulated, validate's ``sim_reward``), the training
set's most common best, and a random pick (the mean share over the candidates).

Runs on a C kernel (``--kernel``) or tiny models (``variant``) are left out: the classifier is
trained on the torch models at full size.  :func:`fresh_live` measures a small new grid the same
way (``--live``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from servelab.analysis.best_config.classify import pick_among
from servelab.analysis.best_config.features import features_frame
from servelab.core.profile import Profile

LIVE_CELLS = ("threads-w2-fifo", "processes-w2-fifo", "async-thread-w2-fifo",
              "async-inline-w2-fifo")
LIVE_WORKLOADS = ("bursty", "mixed")
"""The fresh live grid (``--live``): bursty arrivals, which no stored validate run measured, and
the mixed workload measured afresh.  (slow-only is left out: here its capacity ladder stopped
with KeyError 'error' in loadgen.accounting.build_records, as an empty step's records frame
would — at about 1 req/s a 3 s step can send nothing.)"""


def find_runs(root: Path) -> list[Path]:
    """The validate run folders under ``root`` with live points on torch, full-size models."""
    out = []
    for pts in sorted(Path(root).glob("validate-*/points.parquet")):
        grid_file = pts.parent / "grid.json"
        grid = json.loads(grid_file.read_text()).get("grid", {}) if grid_file.exists() else {}
        if grid.get("kernel", "torch") == "torch" and grid.get("variant", "full") == "full":
            out.append(pts.parent)
    return out


def load_points(runs: Sequence[Path]) -> pd.DataFrame:
    from servelab.analysis.validate.store import Store

    frames = []
    for run in runs:
        df = Store(Path(run)).points()  # (an old run's ms latencies in seconds)
        if not df.empty:
            frames.append(df.assign(run=Path(run).name))
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True)
    # a re-simulated copy of a run (validate --resume with a new profile into a new folder)
    # holds the same live measurements: count each once
    same = [c for c in ("key", "finished_at", "live_reward") if c in df.columns]
    return df.drop_duplicates(subset=same, keep="first", ignore_index=True) if same else df


def decisions(points: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One row per (run, workload, load) with at least two measured configurations among
    ``keys``: ``candidates`` (list), ``live:<key>`` / ``sim:<key>`` rewards (repeats averaged),
    ``live_best``, ``live_margin`` and what it takes to rebuild the workload (rate, duration,
    warm-up, seed)."""
    if points.empty:
        return pd.DataFrame()
    pts = points[points["cell"].isin(list(keys)) & points["live_reward"].notna()]
    rows = []
    for (run, wl, load), g in pts.groupby(["run", "workload", "load"], sort=True):
        live = g.groupby("cell")["live_reward"].mean()
        sim = g.groupby("cell")["sim_reward"].mean()
        cand = [k for k in keys if k in live.index]
        if len(cand) < 2:
            continue
        ranked = live[cand].sort_values(ascending=False)
        first = g.iloc[0]
        rows.append({
            "run": run, "workload": wl, "load": float(load), "rate": float(first["rate"]),
            "duration": float(first["duration"]), "warmup": float(first["warmup"]),
            "seed": int(first["seed"]), "candidates": cand,
            "live_best": str(ranked.index[0]),
            "live_margin": float((ranked.iloc[0] - ranked.iloc[1]) / ranked.iloc[0])
            if ranked.iloc[0] > 0 else 0.0,
            **{f"live:{k}": float(live[k]) for k in cand},
            **{f"sim:{k}": float(sim[k]) for k in cand},
        })
    return pd.DataFrame(rows)


def decision_features(dec: pd.DataFrame, profile: Profile, models: Sequence[str]) -> pd.DataFrame:
    """The features of each decision's workload, as it was served live."""
    from servelab.analysis.validate.grid import at_rate
    from servelab.workloads import load_workload

    specs = []
    for i, r in enumerate(dec.itertuples()):
        spec = at_rate(load_workload(str(r.workload)), float(r.rate), float(r.duration),
                       float(r.warmup), int(r.seed))
        specs.append(replace(spec, name=f"live-{i}"))
    return features_frame(specs, profile, models).drop(columns="workload")


def _share(row: Any, pick: str | None) -> float:
    best = row[f"live:{row['live_best']}"]
    if pick is None or best <= 0:
        return float("nan") if pick is None else 1.0
    return float(row[f"live:{pick}"] / best)


def _sim_best(row: Any) -> str:
    """The candidate the simulator ranks first (the first listed on a tie)."""
    cand = list(row["candidates"])
    return str(cand[int(np.argmax([row[f"sim:{k}"] for k in cand]))])


def evaluate(dec: pd.DataFrame, feats: pd.DataFrame, model: Any, majority: str,
             features: Sequence[str]) -> pd.DataFrame:
    """The decisions with each chooser's pick and its live reward share: ``pick`` (the
    classifier), ``sim_pick``, ``majority_pick``; ``random_share`` is the expected share of a
    uniform pick."""
    if dec.empty:
        return dec
    picks = pick_among(model, feats[list(features)].to_numpy(dtype=float),
                       list(dec["candidates"]))
    extra = feats.drop(columns=[c for c in feats.columns if c in dec.columns])
    out = pd.concat([dec.reset_index(drop=True), extra.reset_index(drop=True)], axis=1)
    out["pick"] = picks
    out["sim_pick"] = [_sim_best(r) for _, r in dec.iterrows()]
    out["majority_pick"] = [majority if majority in c else None for c in dec["candidates"]]
    for col in ("pick", "sim_pick", "majority_pick"):
        out[col.replace("pick", "share")] = [_share(r, r[col]) for _, r in out.iterrows()]
        out[col.replace("pick", "hit")] = out[col] == out["live_best"]
    out["random_share"] = [float(np.mean([_share(r, k) for k in r["candidates"]]))
                           for _, r in out.iterrows()]
    return out


def summary(ev: pd.DataFrame) -> dict[str, Any]:
    """Accuracy and reward share of every chooser over the live decisions."""
    if ev.empty:
        return {"decisions": 0}
    out: dict[str, Any] = {"decisions": int(len(ev)), "runs": int(ev["run"].nunique()),
                           "workloads": sorted(ev["workload"].unique().tolist()),
                           "median_live_margin": float(ev["live_margin"].median())}
    for name, pre in (("classifier", ""), ("simulator", "sim_"), ("majority", "majority_")):
        sh = ev[f"{pre}share"].dropna()
        out[name] = {"accuracy": float(ev[f"{pre}hit"].mean()),
                     "share": float(sh.mean()) if len(sh) else float("nan"),
                     "share_min": float(sh.min()) if len(sh) else float("nan"),
                     "n": int(len(sh))}
    out["random"] = {"share": float(ev["random_share"].mean()),
                     "accuracy": float(np.mean([1 / len(c) for c in ev["candidates"]]))}
    return out


def fresh_live(profile: Profile, out: Path, profile_path: str | None,
               cells: Sequence[str] = LIVE_CELLS, workloads: Sequence[str] = LIVE_WORKLOADS,
               say: Callable[[str], None] = print, budget_s: float = 900.0,
               backend: Any = None) -> Path:
    """A small validate grid (``cells`` x ``workloads`` x loads 0.5 and 0.8, no repeats),
    measured live into ``out`` (resumable there), for :func:`find_runs` to pick up.  Returns
    ``out``."""
    from servelab.analysis.validate.grid import Cell, quick_grid
    from servelab.analysis.validate.validation import validate

    grid = quick_grid(cells=tuple(Cell.parse(c) for c in cells), workloads=tuple(workloads),
                      repeats=1)
    validate(grid, profile, Path(out), backend=backend, attribute=0, profile_path=profile_path,
             command="servelab best-config --live", say=say, budget_s=budget_s)
    return Path(out)
