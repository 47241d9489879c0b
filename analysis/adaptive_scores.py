"""The adaptive demo's scores: each run's table row (throughput, p50, p99, reward, errors,
requests lost in switches) and the adaptive run against the live oracle, from the client's
records cut into decision windows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from servelab.analysis.adaptive_runs import RunResult
from servelab.analysis.live_oracle import live_scores
from servelab.core.workload import WorkloadSpec
from servelab.meta.arms import ArmSet

DRAIN_MARGIN_S = 2.0
"""A request that failed is lost in a switch if it was in flight at some instant from the
switch's start to this long after it ended (the old backend's drain)."""


def window_frame(records: pd.DataFrame, horizon: float, window_s: float) -> pd.DataFrame:
    """The client's records cut into decision windows (the meta-scheduler's definitions)."""
    from servelab.meta.windows import cut_windows, normalise

    frame = records[["intended_arrival", "end", "model", "status"]].copy()
    frame["start"] = frame["intended_arrival"]
    frame["input_size"] = 1.0
    w = cut_windows(frame, horizon, window_s)
    w["norm"] = normalise(w["reward"].to_numpy(), w["offered"].to_numpy(), window_s)
    return w


def lost_in_switches(records: pd.DataFrame, switches: Sequence[dict[str, Any]]) -> int:
    """Requests not answered 200 that were in flight during a switch (see
    :data:`DRAIN_MARGIN_S`)."""
    bad = records[records["status"] != "ok"]
    if bad.empty or not switches:
        return 0
    a = bad["intended_arrival"].to_numpy(dtype=float)
    e = bad["end"].to_numpy(dtype=float)
    e = np.where(np.isnan(e), np.inf, e)
    hit = np.zeros(len(bad), dtype=bool)
    for s in switches:
        hit |= (a <= s["t_client"] + DRAIN_MARGIN_S) & (e >= s["start_client"])
    return int(hit.sum())


def run_row(run: RunResult, spec: WorkloadSpec, window_s: float) -> dict[str, Any]:
    """One line of the table (latencies in seconds, from the intended send)."""
    r = run.records
    post = r[~r["warmup"]]
    ok = post[post["status"] == "ok"]
    lat = ok["latency"].to_numpy(dtype=float)
    span = spec.total_duration - spec.warmup_s
    w = window_frame(r, spec.total_duration, window_s)
    first = int(math.ceil(spec.warmup_s / window_s - 1e-9))
    norm = w["norm"].to_numpy(dtype=float)[first:]
    status = r["status"].value_counts().to_dict()
    http = r["http_status"].to_numpy()
    return {
        "run": run.name, "kind": run.kind,
        "arms": run.meta["current"]["label"] if run.kind == "static" else
        f"{len(run.meta['arms'])} arms",
        "requests": len(r), "ok": int(status.get("ok", 0)),
        "throughput_rps": len(ok) / span if span > 0 else math.nan,
        "p50_s": float(np.percentile(lat, 50)) if lat.size else math.nan,
        "p99_s": float(np.percentile(lat, 99)) if lat.size else math.nan,
        "reward": float(np.nanmean(norm)) if norm.size else math.nan,
        "errors": int(len(r) - status.get("ok", 0)),
        "http_5xx": int(((http >= 500) & (http < 600)).sum()),
        "lost_in_switches": lost_in_switches(r, run.switches),
        "switches": len(run.switches),
    }


def live_oracle(runs: Sequence[RunResult], arms: ArmSet, spec: WorkloadSpec,
                window_s: float) -> dict[str, Any]:
    """The adaptive run (``runs[0]``) against the live oracle built from the static runs
    (:func:`servelab.analysis.live_oracle.live_scores`)."""
    horizon = spec.total_duration
    index = {label: i for i, label in enumerate(arms.labels)}
    statics = {index[r.meta["current"]["label"]]: window_frame(r.records, horizon, window_s)
               for r in runs[1:] if r.kind == "static" and r.meta["current"]["label"] in index}
    adaptive = runs[0]
    first = adaptive.meta["switches"][0]["to"] if adaptive.meta["switches"] else 0
    return live_scores(window_frame(adaptive.records, horizon, window_s), statics,
                       adaptive.switches, int(first), spec.phase_starts(), window_s,
                       spec.warmup_s)
