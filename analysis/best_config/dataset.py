"""The training set: every drawn workload simulated under every configuration, labelled.

The simulations are the sweep's points (:mod:`servelab.sim.sweep`: picklable, run on its
executors with a progress bar, each finished point kept on disk so a killed run resumes); every
configuration of a workload sees the same arrivals (the workload's seed).  The label is the
configuration with the highest reward, the seed's throughput / (1 + p99 s); the runner-up and
the margin ``(best - runner-up) / best`` say how near a tie it was.

The table has one row per workload: ``workload``, the feature columns
(:mod:`.features`), ``best``, ``runner_up``, ``margin``, and ``reward:<key>`` for every
configuration (what any pick would have earned: the reward-share metric reads them).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from servelab.analysis.best_config.features import features_frame
from servelab.analysis.best_config.space import config_key
from servelab.core.config import ServerConfig
from servelab.core.profile import Profile
from servelab.core.profile_parts import setup_name
from servelab.core.workload import WorkloadSpec
from servelab.sim.executors import Executor
from servelab.sim.sweep import make_points, run_sweep

REWARD = "reward:"


def reward_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith(REWARD)]


def keys_of(df: pd.DataFrame) -> list[str]:
    """The configuration keys a samples table has rewards for, in column order."""
    return [c[len(REWARD):] for c in reward_columns(df)]


def simulate_rewards(workloads: Sequence[WorkloadSpec], configs: Sequence[ServerConfig],
                     profile: Profile, executor: Executor, out: Path,
                     progress: bool = True) -> pd.DataFrame:
    """Reward of every (workload, configuration): a workloads x keys frame (index: workload
    name).  Raises if a point failed (its error) — a label over missing configurations would be
    wrong."""
    points = make_points({w.name: w for w in workloads}, configs, profile)
    outcome = run_sweep(points, out, executor, resume=True, progress=progress)
    if outcome.failed:
        pid, err = outcome.failed[0]
        raise RuntimeError(f"{len(outcome.failed)} simulation(s) failed, first {pid}: {err}")
    t = outcome.table
    keys = [f"{setup_name(c, o)}-w{w}-{s}" for c, o, w, s in
            zip(t["concurrency"], t["offload"], t["workers"], t["scheduler"], strict=True)]
    wide = t.assign(key=keys).pivot_table(index="workload", columns="key", values="reward",
                                          aggfunc="mean")
    order = [config_key(c) for c in configs]
    return wide.reindex(index=[w.name for w in workloads], columns=order)


def label(rewards: pd.DataFrame) -> pd.DataFrame:
    """``best``, ``runner_up`` and ``margin`` per row of a workloads x keys reward frame (ties
    go to the first key in column order)."""
    r = rewards.to_numpy(dtype=float)
    r = np.where(np.isfinite(r), r, -np.inf)
    order = np.argsort(-r, axis=1, kind="stable")
    cols = np.asarray(rewards.columns)
    best = r[np.arange(len(r)), order[:, 0]]
    second = r[np.arange(len(r)), order[:, 1]] if r.shape[1] > 1 else best
    margin = np.where(best > 0, (best - second) / np.where(best > 0, best, 1.0), 0.0)
    return pd.DataFrame({"best": cols[order[:, 0]], "runner_up": cols[order[:, min(1, r.shape[1]
                         - 1)]], "margin": margin}, index=rewards.index)


def build_samples(workloads: Sequence[WorkloadSpec], configs: Sequence[ServerConfig],
                  profile: Profile, executor: Executor, out: Path, models: Sequence[str],
                  progress: bool = True) -> pd.DataFrame:
    """The training table (see the module docstring)."""
    rewards = simulate_rewards(workloads, configs, profile, executor, out, progress)
    feats = features_frame(workloads, profile, models).set_index("workload")
    lab = label(rewards)
    table = pd.concat([feats, lab, rewards.add_prefix(REWARD)], axis=1)
    return table.reset_index(names="workload")


def shares(rewards: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """Per row, the reward of the picked column over the row's best (1 where every reward is
    0: nothing to lose)."""
    r = np.where(np.isfinite(rewards), rewards, 0.0)
    best = r.max(axis=1)
    got = r[np.arange(len(r)), picks]
    return np.where(best > 0, got / np.where(best > 0, best, 1.0), 1.0)
