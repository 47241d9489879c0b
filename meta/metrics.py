"""How good a replayed policy was: against the oracle, the best static arm, over time.

* **oracle** — for each phase, the arm with the highest mean reward over that phase's windows
  (argmax over the explicitly simulated grid: every arm simulated on the workload), switching
  for free at phase boundaries: an upper bound.
* **best static** — the arm with the highest mean reward over the whole workload.
* ``oracle_share`` — the policy's mean reward over the oracle's (raw rewards: the seed's
  throughput / (1 + p99 s), in req/s, so busy phases weigh more); ``oracle_share_norm`` — the
  same on the normalised rewards (every window weighs alike).
* ``regret`` — cumulative oracle reward minus the policy's, per window.
* **adaptation time** after each shift — the time from the phase's start until the arm serving
  is *good* (its mean reward over the phase within ``tol`` = 5% of the phase oracle's) and stays
  good to the end of the phase.  During a switch the window counts as the old arm's share of it
  (less the start-up penalty) plus the new arm's, so a window spent switching is good only if
  that blend is.  Judging arms by their phase means, not by each window's noisy draw, keeps an
  arm that is as good as the oracle's from being called bad because one window was unlucky.
  ``None`` when the policy never settles on a good arm in that phase.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from servelab.meta.replay import Replay, SwitchCosts
from servelab.meta.windows import RewardTable

TOLERANCE = 0.05


def phase_means(table: RewardTable, values: np.ndarray | None = None) -> np.ndarray:
    """Mean reward of every arm in every phase (arms × phases)."""
    values = table.reward if values is None else values
    out = np.zeros((table.n_arms, table.n_phases))
    for k in range(table.n_phases):
        cols = table.phase_windows(k)
        out[:, k] = values[:, cols].mean(axis=1) if cols.size else np.nan
    return out


def oracle_arms(table: RewardTable) -> np.ndarray:
    """The oracle's arm per phase (argmax of the phase-mean reward; ties to the lowest
    index)."""
    means = phase_means(table)
    return np.array([int(np.nanargmax(means[:, k])) if np.isfinite(means[:, k]).any() else 0
                     for k in range(table.n_phases)])


def oracle_sequence(table: RewardTable) -> np.ndarray:
    """The oracle's arm in every window."""
    return oracle_arms(table)[table.phase]


def oracle_rewards(table: RewardTable, norm: bool = False) -> np.ndarray:
    values = table.norm if norm else table.reward
    return values[oracle_sequence(table), np.arange(table.n_windows)]


def best_static_arm(table: RewardTable) -> int:
    return int(np.argmax(table.reward.mean(axis=1)))


def effective_means(rep: Replay, table: RewardTable, costs: SwitchCosts) -> np.ndarray:
    """Per window, the phase-mean reward of what served it (blended during a switch)."""
    means = phase_means(table)
    f = rep.frame
    k = f["phase"].to_numpy()
    old, new = f["old"].to_numpy(), f["new"].to_numpy()
    share = f["old_share"].to_numpy()
    switching = old != new
    pen = np.where(switching, costs.penalty, 0.0)
    return share * means[old, k] * (1.0 - pen) + (1.0 - share) * means[new, k]


def settled_from(values: np.ndarray, target: float, tol: float = TOLERANCE) -> int | None:
    """The first index from which ``values`` stay within ``tol`` of ``target`` to the end
    (None: the last one is not): the adaptation rule, in simulation and live."""
    good = values >= (1.0 - tol) * target - 1e-12
    if good.size == 0 or not good[-1]:
        return None
    bad = np.flatnonzero(~good)
    return 0 if bad.size == 0 else int(bad[-1]) + 1


def adaptation_times(
    rep: Replay, table: RewardTable, costs: SwitchCosts, tol: float = TOLERANCE
) -> list[float | None]:
    """Adaptation time in seconds for every phase (index 0: from the start of the run)."""
    eff = effective_means(rep, table, costs)
    oracle = phase_means(table).max(axis=0)
    out: list[float | None] = []
    for k in range(table.n_phases):
        cols = table.phase_windows(k)
        if cols.size == 0:
            out.append(None)
            continue
        first = settled_from(eff[cols], oracle[k], tol)
        out.append(None if first is None else float(first * table.window_s))
    return out


def score(
    rep: Replay, table: RewardTable, costs: SwitchCosts, tol: float = TOLERANCE
) -> dict[str, Any]:
    """The summary figures of one replay (see the module docstring)."""
    oracle = oracle_rewards(table)
    oracle_n = oracle_rewards(table, norm=True)
    reward = rep.frame["reward"].to_numpy()
    norm = rep.frame["norm"].to_numpy()
    regret = np.cumsum(oracle - reward)
    adapt = adaptation_times(rep, table, costs, tol)
    shifts = adapt[1:]
    finite = [a for a in shifts if a is not None]
    return {
        "policy": rep.name,
        "mean_reward": float(reward.mean()),
        "oracle_mean_reward": float(oracle.mean()),
        "oracle_share": float(reward.sum() / oracle.sum()) if oracle.sum() > 0 else math.nan,
        "oracle_share_norm": float(norm.sum() / oracle_n.sum()) if oracle_n.sum() > 0
        else math.nan,
        "regret": float(regret[-1]) if regret.size else 0.0,
        "regret_per_window": float(regret[-1] / regret.size) if regret.size else 0.0,
        "adaptation_s": shifts,
        "initial_adaptation_s": adapt[0],
        "max_adaptation_s": (max(finite) if len(finite) == len(shifts) and finite else
                             (None if shifts else 0.0)),
        "adapted_all": all(a is not None for a in shifts),
        "switches": rep.switches,
        "backend_switches": rep.backend_switches,
        "switching_s": rep.switching_s,
        "decision_s": rep.decision_s,
    }


def cumulative_regret(rep: Replay, table: RewardTable) -> np.ndarray:
    return np.cumsum(oracle_rewards(table) - rep.frame["reward"].to_numpy())


def explain(rep: Replay, table: RewardTable) -> list[dict[str, Any]]:
    """Runs of one served arm: when, which arm, how its reward compared with the phase
    oracle's, and why — when the pick was made (a backend switch starts windows before the arm
    serves), the features the policy saw then, and its ``last_reason``: the "which arm was
    chosen when and why" table."""
    f = rep.frame
    served = f["served"].to_numpy()
    means = phase_means(table)
    oracle = oracle_arms(table)
    rows: list[dict[str, Any]] = []
    start = 0
    labels = table.arms.labels
    for w in range(1, table.n_windows + 1):
        if w < table.n_windows and served[w] == served[start] and \
                table.phase[w] == table.phase[start]:
            continue
        a, k = int(served[start]), int(table.phase[start])
        sl = slice(start, w)
        chosen = f["chosen"].to_numpy()[:start + 1]
        picked = np.flatnonzero(chosen == a)
        decided = int(picked[-1]) if picked.size else start  # a backend switch began earlier
        ctx = table.context(int(served[decided - 1]), decided - 1) if decided > 0 else None
        reason = str(f["reason"].iloc[decided]) if "reason" in f else ""
        rows.append({
            "from_s": start * table.window_s, "to_s": w * table.window_s, "phase": k,
            "arm": a, "label": labels[a], "mean_reward": float(f["reward"].iloc[sl].mean()),
            "phase_mean": float(means[a, k]), "oracle_arm": labels[int(oracle[k])],
            "oracle_phase_mean": float(means[int(oracle[k]), k]),
            "seen_rate": None if ctx is None else round(ctx.rate, 1),
            "seen_mix": None if ctx is None else
            f"{ctx.fast:.0%}/{ctx.medium:.0%}/{ctx.slow:.0%}",
            "seen_p99_s": None if ctx is None else float(ctx.p99_s),
            "switching_s": float(f["switching"].iloc[sl].sum()),
            "decided_s": decided * table.window_s, "reason": reason,
        })
        start = w
    return rows


def aggregate(scores: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Across workloads: mean / min oracle share, worst adaptation, total switches."""
    shares = [s["oracle_share"] for s in scores]
    adapts = [a for s in scores for a in s["adaptation_s"]]
    return {
        "mean_oracle_share": float(np.mean(shares)) if shares else math.nan,
        "min_oracle_share": float(np.min(shares)) if shares else math.nan,
        "max_adaptation_s": None if any(a is None for a in adapts) else
        (max(adapts) if adapts else 0.0),
        "switches": int(sum(s["switches"] for s in scores)),
    }
