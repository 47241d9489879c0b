"""``servelab meta eval``: every policy over held-out workloads, next to the baselines.

For each workload: its reward table (every arm simulated over it; cached), then

* the **oracle** (the best arm of each phase, switching for free — the reference),
* **best static** (the best single arm over the whole workload), **random** and
  **round-robin** (both paying the switching costs a policy pays),
* each policy **cold** (fresh) and, with ``--prior``, **from the prior** (the policy file's
  trained state, still learning online),

all replayed window by window (``meta.replay``) and scored (``meta.metrics``).  Writes
``summary.json`` (every score, the arms, the switching costs, the command), ``windows.parquet``
(one row per workload × policy × window: the arm chosen and why, its reward, the oracle's,
regret), ``choices.json`` (runs of one arm: when, which, what the policy saw) and per workload
``reward-<workload>.png`` / ``regret-<workload>.png``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from servelab.core.profile import Profile
from servelab.core.workload import WorkloadSpec
from servelab.meta.arms import ArmSet
from servelab.meta.metrics import (
    aggregate,
    best_static_arm,
    cumulative_regret,
    explain,
    oracle_rewards,
    oracle_sequence,
    score,
)
from servelab.meta.policies import load_policy, make_policy
from servelab.meta.replay import RandomArm, Replay, RoundRobin, Scripted, SwitchCosts, replay
from servelab.meta.windows import RewardTable, build_tables
from servelab.results import write_json, write_parquet

log = logging.getLogger(__name__)

BASELINES = ("oracle", "best-static", "random", "round-robin")


@dataclass
class EvalResult:
    out: Path
    scores: list[dict[str, Any]]  # one per workload x entry
    tables: list[RewardTable]
    replays: dict[tuple[str, str], Replay] = field(default_factory=dict)


def baseline_replays(table: RewardTable, costs: SwitchCosts, seed: int = 0) -> list[Replay]:
    oracle = replay(Scripted(oracle_sequence(table)), table, SwitchCosts.free(), name="oracle")
    static = replay(Scripted([best_static_arm(table)]), table, costs, name="best-static")
    rnd = replay(RandomArm(table.n_arms, seed), table, costs, name="random")
    rr = replay(RoundRobin(table.n_arms), table, costs, name="round-robin")
    return [oracle, static, rnd, rr]


def evaluate(
    workloads: Sequence[WorkloadSpec],
    profile: Profile,
    arms: ArmSet,
    policies: Sequence[str],
    executor: Any,
    out: Path,
    prior: Mapping[str, Any] | None = None,
    cache_dir: Path | None = None,
    window_s: float = 1.0,
    reward_kind: str = "reward",
    slo_ms: float | Mapping[str, float] | None = None,
    costs: SwitchCosts | None = None,
    seed: int = 0,
    cold: bool = True,
    plots: bool = True,
    command: str = "",
    progress: bool = True,
) -> EvalResult:
    """Evaluate ``policies`` (specs; cold unless ``cold=False``, and from ``prior``'s trained
    state where it has them) on ``workloads``; write everything under ``out``."""
    costs = costs if costs is not None else SwitchCosts.from_profile(profile)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tables = build_tables(workloads, arms, profile, executor, cache_dir=cache_dir,
                          window_s=window_s, reward_kind=reward_kind, slo_ms=slo_ms,
                          progress=progress)
    prior_states = dict(prior["policies"]) if prior is not None else {}
    entries: list[tuple[str, str, Any]] = []  # (name, spec, state or None)
    for spec in policies:
        if cold:
            entries.append((f"{spec} (cold)", spec, None))
        if spec in prior_states:
            entries.append((f"{spec} (prior)", spec, prior_states[spec]["policy"]))
        elif prior is not None:
            log.warning("policy %s is not in the prior; evaluated cold only", spec)
    matrix = costs.lost_matrix(arms)
    result = EvalResult(out=out, scores=[], tables=list(tables))
    frames = []
    choices: dict[str, dict[str, Any]] = {}
    for table in tables:
        reps = baseline_replays(table, costs, seed)
        for name, spec, state in entries:
            policy = make_policy(spec, table.n_arms, seed, cost=matrix, window_s=window_s) \
                if state is None else load_policy(state)
            if policy.n_arms != table.n_arms:
                raise ValueError(f"{name}: {policy.n_arms} arms in the prior, {table.n_arms} here")
            reps.append(replay(policy, table, costs, name=name))
        oracle = oracle_rewards(table)
        for rep in reps:
            s = score(rep, table, costs)
            s.update(workload=table.workload, kind="baseline" if rep.name in BASELINES
                     else "policy", shifts=table.n_phases - 1)
            result.scores.append(s)
            result.replays[(table.workload, rep.name)] = rep
            f = rep.frame.copy()
            f.insert(0, "workload", table.workload)
            f.insert(1, "policy", rep.name)
            f["label"] = [table.arms[int(a)].label for a in f["served"]]
            f["oracle_reward"] = oracle
            f["oracle_label"] = [table.arms[int(a)].label for a in oracle_sequence(table)]
            f["regret"] = oracle - f["reward"].to_numpy()
            f["cum_regret"] = np.cumsum(f["regret"].to_numpy())
            frames.append(f)
            choices.setdefault(table.workload, {})[rep.name] = explain(rep, table)
        if plots:
            _plot(table, reps, out)
    windows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    write_parquet(out / "windows.parquet", windows)
    write_json(out / "choices.json", choices)
    by_policy: dict[str, list[dict[str, Any]]] = {}
    for s in result.scores:
        by_policy.setdefault(s["policy"], []).append(s)
    write_json(out / "summary.json", {
        "command": command, "profile": profile.digest, "profile_source": profile.machine.source,
        "arms": arms.to_list(), "window_s": window_s, "reward": reward_kind, "slo_ms": slo_ms,
        "switch_costs": costs.to_dict(), "seed": seed,
        "prior": None if prior is None else {k: prior.get(k) for k in (
            "command", "profile", "training")},
        "workloads": [{"name": t.workload, "phases": t.n_phases, "windows": t.n_windows,
                       "key": t.meta.get("key"),
                       "oracle_arms": [t.arms[int(a)].label for a in
                                       np.unique(oracle_sequence(t))]}
                      for t in tables],
        "scores": result.scores,
        "aggregate": {p: aggregate(v) for p, v in by_policy.items()},
        "targets": targets(result.scores),
    })
    return result


def targets(scores: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets, judged on the best policy (highest minimum oracle share)."""
    by_policy: dict[str, list[dict[str, Any]]] = {}
    for s in scores:
        if s["kind"] == "policy":
            by_policy.setdefault(s["policy"], []).append(s)
    if not by_policy:
        return {}
    best = max(by_policy, key=lambda p: (min(s["oracle_share"] for s in by_policy[p]),
                                         np.mean([s["oracle_share"] for s in by_policy[p]])))
    rows = by_policy[best]
    base = {(s["workload"], s["policy"]): s["oracle_share"] for s in scores
            if s["kind"] == "baseline"}
    beats = {
        r["workload"]: all(r["oracle_share"] > base.get((r["workload"], b), -math.inf)
                           for b in ("best-static", "random", "round-robin"))
        for r in rows
    }
    adapts = [a for r in rows for a in r["adaptation_s"]]
    worst = None if any(a is None for a in adapts) else (max(adapts) if adapts else 0.0)
    return {
        "best_policy": best,
        "min_oracle_share": min(r["oracle_share"] for r in rows),
        "mean_oracle_share": float(np.mean([r["oracle_share"] for r in rows])),
        "share_ge_97": all(r["oracle_share"] >= 0.97 for r in rows),
        "max_adaptation_s": worst,
        "adapt_lt_5s": worst is not None and worst < 5.0,
        "adapt_lt_2s": worst is not None and worst < 2.0,
        "beats_baselines": beats,
        "beats_all": all(beats.values()),
        "max_decision_s": max(r["decision_s"] for r in rows),
    }


def _fmt_adapt(values: Sequence[float | None]) -> str:
    if not values:
        return "-"
    return " ".join("never" if v is None else f"{v:g}" for v in values)


def format_scores(scores: Sequence[dict[str, Any]], command: str = "") -> str:
    """The printed table: one block per workload, one row per baseline / policy."""
    lines = []
    width = max([len(s["policy"]) for s in scores] + [12])
    for wl in dict.fromkeys(s["workload"] for s in scores):
        rows = [s for s in scores if s["workload"] == wl]
        lines.append(f"\n{wl}  ({rows[0]['shifts']} shift(s); oracle mean reward "
                     f"{rows[0]['oracle_mean_reward']:.2f})")
        lines.append(f"  {'policy':<{width}} {'oracle_share':>12} {'share(norm)':>11} "
                     f"{'switches':>8} {'switch s':>8} {'regret':>9}  adaptation s per shift")
        for s in rows:
            lines.append(
                f"  {s['policy']:<{width}} {s['oracle_share']:>12.3f} "
                f"{s['oracle_share_norm']:>11.3f} {s['switches']:>8d} {s['switching_s']:>8.1f} "
                f"{s['regret']:>9.1f}  {_fmt_adapt(s['adaptation_s'])}"
            )
    if command:
        lines.append(f"\nreproduce: {command}")
    return "\n".join(lines)


def format_targets(t: Mapping[str, Any]) -> str:
    if not t:
        return ""
    beats = ", ".join(f"{w}: {'yes' if ok else 'NO'}" for w, ok in t["beats_baselines"].items())
    worst = t["max_adaptation_s"]
    adapt = "never (some shift)" if worst is None else f"{worst:g} s"
    return (
        f"targets (best policy: {t['best_policy']}):\n"
        f"  oracle share >= 0.97 on every workload: {'met' if t['share_ge_97'] else 'MISSED'}"
        f" (min {t['min_oracle_share']:.3f}, mean {t['mean_oracle_share']:.3f})\n"
        f"  adaptation < 5 s after every shift: {'met' if t['adapt_lt_5s'] else 'MISSED'}"
        f" (worst {adapt}; goal < 2 s: {'met' if t['adapt_lt_2s'] else 'missed'})\n"
        f"  beats best-static, random, round-robin: {'met' if t['beats_all'] else 'MISSED'}"
        f" ({beats})\n"
        f"  select + update: {t['max_decision_s'] * 1e6:.1f} µs per window (worst mean)"
    )


def format_choices(rows: Sequence[Mapping[str, Any]], limit: int = 40) -> str:
    """Which arm served when, and what the policy saw when it picked it."""
    out = [f"  {'from':>5} {'to':>5} {'ph':>2} {'arm':<22} {'reward':>7} {'phase':>7} "
           f"{'oracle arm':<22} {'oracle':>7} {'picked':>6}  seen: rate, mix f/m/s, p99; why"]
    for r in rows[:limit]:
        seen = "-" if r["seen_rate"] is None else \
            f"{r['seen_rate']:g}/s {r['seen_mix']} {round(r['seen_p99_s'] * 1e3, 1):g} ms"
        out.append(
            f"  {r['from_s']:>5g} {r['to_s']:>5g} {r['phase']:>2d} {r['label']:<22} "
            f"{r['mean_reward']:>7.2f} {r['phase_mean']:>7.2f} {r['oracle_arm']:<22} "
            f"{r['oracle_phase_mean']:>7.2f} {r['decided_s']:>6g}  {seen}; {r['reason'][:70]}"
        )
    if len(rows) > limit:
        out.append(f"  ... {len(rows) - limit} more runs in choices.json")
    return "\n".join(out)


def _plot(table: RewardTable, reps: Sequence[Replay], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(table.n_windows) * table.window_s
    oracle = oracle_rewards(table)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in table.workload)
    fig, ax = plt.subplots(figsize=(11, 5))
    ax.plot(t, oracle, color="black", lw=2, label="oracle", zorder=5)
    for rep in reps:
        if rep.name == "oracle":
            continue
        r = rep.frame["reward"].to_numpy()
        style = ":" if rep.name in BASELINES else "-"
        (line,) = ax.plot(t, r, style, lw=1, label=rep.name)
        served = rep.frame["served"].to_numpy()
        sw = np.flatnonzero(np.diff(served) != 0) + 1
        ax.scatter(t[sw], r[sw], marker="|", s=60, color=line.get_color())
    for s in table.phase_starts[1:]:
        ax.axvline(s, color="grey", ls="--", lw=1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"reward per window ({table.reward_kind})")
    ax.set_title(f"{table.workload}: reward per {table.window_s:g} s window "
                 "(| = arm change, dashed = shift)")
    ax.legend(fontsize=7, ncol=2, loc="best")
    fig.tight_layout()
    fig.savefig(out / f"reward-{safe}.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(11, 5))
    for rep in reps:
        if rep.name == "oracle":
            continue
        style = ":" if rep.name in BASELINES else "-"
        ax.plot(t, cumulative_regret(rep, table), style, lw=1.2, label=rep.name)
    for s in table.phase_starts[1:]:
        ax.axvline(s, color="grey", ls="--", lw=1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("cumulative regret (oracle − policy)")
    ax.set_title(f"{table.workload}: cumulative regret")
    ax.legend(fontsize=7, ncol=2, loc="best")
    fig.tight_layout()
    fig.savefig(out / f"regret-{safe}.png", dpi=110)
    plt.close(fig)
