"""The oracle table: the best server configuration for each workload under a named objective.

Objectives (larger is better):

* ``goodput`` — requests per second that completed within the SLO (``--slo-ms``, one number or
  one per model): the throughput a user actually experiences as served;
* ``reward`` — the study's original reward, throughput / (1 + p99 latency in seconds).

With several seeds per point the objective is averaged over seeds first.  The table says, per
workload (and load scale), which configuration wins, by how much it beats the runner-up, and
how the default configuration does — what the meta-scheduler is later trained to match.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

OBJECTIVES: dict[str, str] = {
    "goodput": "requests per second within the SLO (needs --slo-ms)",
    "reward": "throughput / (1 + p99 latency in seconds)",
}

CONFIG_COLUMNS = (
    "concurrency", "workers", "scheduler", "max_batch", "batch_timeout_ms", "intra_op_threads",
    "queue_capacity", "max_queue_wait_ms", "model_lock", "offload", "kernel",
)


def objective_column(objective: str) -> str:
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; valid: {', '.join(OBJECTIVES)}")
    return objective


def oracle_table(
    table: pd.DataFrame, objective: str = "reward", by: Sequence[str] = ("workload", "scale"),
) -> pd.DataFrame:
    """One row per workload group: the best configuration, its objective, the runner-up."""
    col = objective_column(objective)
    if table.empty:
        return pd.DataFrame()
    if col not in table or table[col].isna().all():
        hint = " (run the sweep with --slo-ms)" if col == "goodput" else ""
        raise ValueError(f"the sweep table has no {col!r} values{hint}")
    by = [b for b in by if b in table]
    cfg_cols = ["config_id"] + [c for c in CONFIG_COLUMNS if c in table]
    mean = (
        table.groupby(by + cfg_cols, dropna=False)[[col, "throughput", "latency_p99_s"]]
        .mean()
        .reset_index()
    )
    rows = []
    for key, g in mean.groupby(by, sort=True):
        g = g.sort_values([col, "config_id"], ascending=[False, True], kind="stable")
        best = g.iloc[0]
        second = g.iloc[1] if len(g) > 1 else None
        row = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True))
        row.update({
            "objective": objective,
            "best_config": best["config_id"],
            **{c: best[c] for c in cfg_cols[1:]},
            "best_value": float(best[col]),
            "best_throughput": float(best["throughput"]),
            "best_p99_s": float(best["latency_p99_s"]),
            "runner_up": second["config_id"] if second is not None else "",
            "runner_up_value": float(second[col]) if second is not None else math.nan,
            "margin": (
                float(best[col] / second[col] - 1)
                if second is not None and second[col] > 0 else math.nan
            ),
            "worst_value": float(g.iloc[-1][col]),
            "configs": len(g),
        })
        rows.append(row)
    return pd.DataFrame(rows)


def format_oracle(oracle: pd.DataFrame) -> str:
    if oracle.empty:
        return "(no finished points)"
    lines = [
        f"{'workload':<14} {'scale':>5}  {'best configuration':<34} {'value':>9} "
        f"{'runner-up':<34} {'margin':>7} {'worst':>9}"
    ]
    for _, r in oracle.iterrows():
        lines.append(
            f"{str(r['workload']):<14} {r.get('scale', 1.0):>5g}  {r['best_config']:<34} "
            f"{r['best_value']:>9.2f} {r['runner_up']:<34} {r['margin']:>7.1%} "
            f"{r['worst_value']:>9.2f}"
        )
    return "\n".join(lines)
