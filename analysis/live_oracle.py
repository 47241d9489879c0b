"""The live oracle: how the adaptive gateway did against the best static arm of each phase,
every arm measured live on the same arrivals (``servelab meta eval --live``, ``demo --adaptive``).

The definitions are the simulator's (:mod:`servelab.meta.metrics`), on live measurements:

* an arm's **phase mean** is its static run's mean normalised window reward in that phase
  (windows after the warm-up);
* the **oracle** earns, in every window, the best phase mean of that window's phase; the
  **oracle share** is the adaptive run's summed window reward over the oracle's;
* the **effective** reward of a window is the phase mean of the arm that *served* it (from the
  gateway's switch log: a switch serves from the moment it completed); the **adaptation time**
  of a phase is the time from its start after which the effective reward stays within
  ``tol`` of the oracle's (``None``: it never got there).  Judged on phase means, not on the
  adaptive run's own noisy windows: the question is whether the gateway chose well, and how
  soon.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from servelab.meta.metrics import TOLERANCE, settled_from


def serving_arms(switches: Sequence[Mapping[str, Any]], first: int, times: np.ndarray,
                 ) -> np.ndarray:
    """The arm serving at each of ``times`` (client seconds): ``first`` until the first
    completed switch's ``t_client``, then each switch's ``to`` (failed switches excluded)."""
    done = sorted((float(s["t_client"]), int(s["to"])) for s in switches
                  if s.get("kind") != "failed")
    out = np.full(len(times), first, dtype=np.int64)
    for t, arm in done:
        out[times >= t] = arm
    return out


def _phases(windows: pd.DataFrame, phase_starts: Sequence[float], warmup_s: float,
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each window's start, phase index and whether it is past the warm-up."""
    starts = windows["t0"].to_numpy(dtype=float)
    phase = np.searchsorted(np.asarray(phase_starts, dtype=float), starts + 1e-9,
                            side="right") - 1
    return starts, np.clip(phase, 0, len(phase_starts) - 1), starts >= warmup_s - 1e-9


def live_scores(adaptive: pd.DataFrame, statics: Mapping[int, pd.DataFrame],
                switches: Sequence[Mapping[str, Any]], first_arm: int,
                phase_starts: Sequence[float], window_s: float, warmup_s: float = 0.0,
                tol: float = TOLERANCE) -> dict[str, Any]:
    """Oracle share and adaptation times from window frames (``t0``, ``norm`` per window:
    :func:`servelab.analysis.adaptive_scores.window_frame`): the adaptive run's, and each arm's
    static run keyed by its index in the adaptive run's arm list."""
    starts, phase, keep = _phases(adaptive, phase_starts, warmup_s)
    arms = sorted(statics)
    means = np.full((max(arms, default=-1) + 1, len(phase_starts)), math.nan)
    for a in arms:
        _, s_phase, s_keep = _phases(statics[a], phase_starts, warmup_s)
        norm = statics[a]["norm"].to_numpy(dtype=float)
        for k in range(len(phase_starts)):
            sel = s_keep & (s_phase == k)
            if sel.any():
                means[a, k] = float(np.nanmean(norm[sel]))
    with np.errstate(all="ignore"):
        best = np.nanmax(means, axis=0) if arms else np.full(len(phase_starts), math.nan)
        best_arm = [int(np.nanargmax(means[:, k])) if np.isfinite(means[:, k]).any() else -1
                    for k in range(len(phase_starts))]
    oracle = best[phase]
    got = adaptive["norm"].to_numpy(dtype=float)
    ok = keep & np.isfinite(oracle) & np.isfinite(got)
    served = serving_arms(switches, first_arm, starts + window_s / 2)
    eff = np.array([means[a, k] if 0 <= a < len(means) else math.nan
                    for a, k in zip(served, phase, strict=True)])
    static_sums = {a: float(np.nansum(np.where(ok, means[a, phase], 0.0))) for a in arms}
    best_static = max(static_sums, key=lambda a: static_sums[a]) if arms else -1
    adapt: list[float | None] = []
    for k, t0 in enumerate(phase_starts):
        cols = np.flatnonzero(keep & (phase == k))
        if cols.size == 0 or not math.isfinite(best[k]):
            adapt.append(None)
            continue
        first = settled_from(eff[cols], best[k], tol)
        adapt.append(None if first is None
                     else float(max(starts[cols[first]] - max(t0, warmup_s), 0.0)))
    total = float(oracle[ok].sum())
    return {
        "oracle_share": float(got[ok].sum() / total) if total > 0 else math.nan,
        "best_static_share": (float(got[ok].sum() / static_sums[best_static])
                              if arms and static_sums[best_static] > 0 else math.nan),
        "best_static_arm": best_static,
        "oracle_arms": best_arm,
        "phase_means": means.tolist(),
        "adaptation_s": adapt,
        "adaptation_after_shifts_s": adapt[1:],
        "tolerance": tol,
        "windows": int(ok.sum()),
    }


def format_scores(s: Mapping[str, Any], labels: Sequence[str]) -> str:
    """Two lines: the shares, and the adaptation after each shift against the targets."""
    shifts = s["adaptation_after_shifts_s"]
    adapt = ", ".join("never" if a is None else f"{a:.1f} s" for a in shifts) or "no shift"
    worst = max((math.inf if a is None else a for a in shifts), default=0.0)
    oracle = ", ".join(labels[a] if 0 <= a < len(labels) else "?" for a in s["oracle_arms"])
    return (f"live oracle share {s['oracle_share']:.0%} (target >= 90%); "
            f"{s['best_static_share']:.0%} of the best static arm "
            f"({labels[s['best_static_arm']] if s['best_static_arm'] >= 0 else '?'})\n"
            f"adaptation after each shift: {adapt} (target < 5 s, goal < 2 s: "
            f"{'met' if worst < 5 else 'missed'}); per-phase oracle arms: {oracle}")
