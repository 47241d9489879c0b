"""The soak's figures and its verdict, from its records alone (no I/O).

Inputs: the load's per-request records (:func:`servelab.loadgen.accounting.build_records`),
the monitor's RSS samples and events (:mod:`.soak_monitor`), the capacity the overload is
measured against (its rate and p99) and the :class:`Targets` of issue 14:

* **goodput** — ``ok`` answers per second of the requests intended during the soak (before
  the SIGTERM) ≥ ``goodput_share`` × the capacity;
* **p99** — those ``ok`` answers' p99 (from the intended send) ≤ ``p99_ratio`` × the p99 at
  capacity;
* **explicit 503** — every request sent during the soak that is not ``ok`` was answered HTTP
  503: no connection failure, no client timeout, no other status;
* **no crash** — the server ran until the SIGTERM, a killed worker was replaced, and the
  server exited 0 after draining;
* **RSS** — the server's and the whole tree's RSS (server + zygote + workers) grew less than
  ``rss_growth`` from the ``rss_baseline_s`` mark to the end of the soak (medians over
  ``rss_span_s`` at each end);
* **lost** — requests sent before the server exited that got neither an answer ``ok`` nor a
  503 (at the kill, in the drain, elsewhere): 0.  After the SIGTERM a connection the server
  refused (its port closed, :func:`refused_mask`) is not lost: it was never accepted.

Requests intended after the server exited (the drain's tail, refused by a closed port) are
counted apart and judged by nothing.  ``not_sent`` requests (the load generator fell behind)
are a flaw of the measurement, not of the server: a count of their own; so is ``overloaded``,
false when the server answered ``ok`` at >= 95 % of the offered rate (its throughput limit is
above the overload: the capacity at the SLO can be far below it with batching).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

REFUSED = "connect failed"
"""How the load generator's error for a connection the server refused begins."""
OVERLOADED = 0.95
"""The soak was an overload when the goodput stayed below this share of the offered rate (else
the verdict says it was none)."""
KILL_WINDOW_S = 2.0
"""Requests intended this close around the kill count as the kill's (lost or not)."""


@dataclass(frozen=True)
class Targets:
    goodput_share: float = 0.9
    p99_ratio: float = 2.0
    rss_growth: float = 0.05
    rss_baseline_s: float = 60.0
    rss_span_s: float = 10.0


@dataclass(frozen=True)
class Capacity:
    rps: float
    """The capacity: ok answers per second at the best sustainable step (p99 within the SLO)."""
    p99_s: float
    """The ok answers' p99 at that step (seconds)."""
    source: str = "ladder"


@dataclass(frozen=True)
class Timeline:
    """When things happened, seconds from the load's start."""

    soak_end: float
    """End of the judged period: the SIGTERM, or the end of the schedule without one."""
    kill_at: float | None = None
    exit_at: float | None = None
    exit_code: int | None = None
    crashed_at: float | None = None
    replaced_s: float | None = None
    """How long the killed worker's replacement took to appear."""
    kill_skipped: str | None = None

    @classmethod
    def from_events(cls, events: Sequence[Mapping[str, Any]], schedule_end: float) -> Timeline:
        by = {e["kind"]: e for e in events}
        sigterm = by.get("sigterm")
        return cls(
            soak_end=float(sigterm["t"]) if sigterm else schedule_end,
            kill_at=float(by["kill"]["t"]) if "kill" in by else None,
            exit_at=float(by["exit"]["t"]) if "exit" in by else None,
            exit_code=int(by["exit"]["exit_code"]) if "exit" in by else None,
            crashed_at=float(by["crash"]["t"]) if "crash" in by else None,
            replaced_s=float(by["replaced"]["after_s"]) if "replaced" in by else None,
            kill_skipped=str(by["kill_skipped"]["reason"]) if "kill_skipped" in by else None,
        )


def _is_503(rec: pd.DataFrame) -> pd.Series:
    return rec["http_status"].eq(503)


def _sent(rec: pd.DataFrame) -> pd.Series:
    return rec["status"].ne("not_sent") & rec["enqueue"].notna()


def failed_mask(rec: pd.DataFrame) -> pd.Series:
    """Sent, and answered neither ok nor 503 (a connection failure, a timeout, a 5xx...)."""
    return _sent(rec) & rec["status"].ne("ok") & ~_is_503(rec)


def refused_mask(rec: pd.DataFrame) -> pd.Series:
    """No connection: the port was closed (never accepted, so never lost once the server is
    draining: a client knows to go elsewhere)."""
    return rec["http_status"].eq(0) & rec["error"].fillna("").str.startswith(REFUSED)


def windows(rec: pd.DataFrame, samples: pd.DataFrame, width: float = 1.0) -> pd.DataFrame:
    """Per-``width`` windows: requests by intended time (offered, sent, statuses), ok answers
    and their p99 by completion time, the tree's RSS (last sample in the window)."""
    end = float(max(rec["intended_arrival"].max() if len(rec) else 0.0,
                    samples["t"].max() if len(samples) else 0.0))
    n = int(math.floor(end / width)) + 1
    idx = np.clip((rec["intended_arrival"].to_numpy() // width).astype(np.int64), 0, n - 1)
    out = pd.DataFrame({"t": np.arange(n) * width})

    def count(mask: pd.Series | np.ndarray) -> np.ndarray:
        return np.bincount(idx[np.asarray(mask)], minlength=n)

    ok = rec["status"].eq("ok").to_numpy()
    out["offered"] = count(np.ones(len(rec), dtype=bool)) / width
    out["sent"] = count(_sent(rec)) / width
    out["rejected_503"] = count(_is_503(rec)) / width
    out["failed"] = count(failed_mask(rec)) / width
    out["not_sent"] = count(rec["status"].eq("not_sent")) / width
    out["ok_intended"] = count(ok) / width
    done = rec.loc[ok, ["end", "latency"]]
    didx = np.clip((done["end"].to_numpy() // width).astype(np.int64), 0, n - 1)
    out["goodput"] = np.bincount(didx, minlength=n) / width
    p99 = pd.Series(done["latency"].to_numpy()).groupby(didx).quantile(0.99)
    out["p99_s"] = p99.reindex(range(n)).to_numpy()
    out["share_503"] = np.where(out["sent"] > 0, out["rejected_503"] / out["sent"].where(
        out["sent"] > 0, 1), np.nan)
    for role, name in ((("server",), "rss_server_mb"), (None, "rss_total_mb")):
        s = samples if role is None else samples[samples["role"].isin(role)]
        if len(s):
            per_t = s.groupby("t")["rss_mb"].sum()
            w = (per_t.index.to_numpy() // width).astype(np.int64)
            out[name] = per_t.groupby(np.clip(w, 0, n - 1)).last().reindex(range(n)).to_numpy()
        else:
            out[name] = np.nan
    return out


def rss_growth(samples: pd.DataFrame, roles: Sequence[str] | None, start: float, end: float,
               span: float) -> dict[str, float]:
    """RSS (MiB, summed over ``roles``; None = every process) at ``start`` and at ``end`` —
    medians over ``span`` s after ``start`` and before ``end`` — and the growth between."""
    s = samples if roles is None else samples[samples["role"].isin(list(roles))]
    per_t = s.groupby("t")["rss_mb"].sum() if len(s) else pd.Series(dtype=float)
    t = per_t.index.to_numpy(dtype=float)
    first = per_t[(t >= start) & (t < start + span)]
    last = per_t[(t <= end) & (t > end - span)]
    a = float(first.median()) if len(first) else math.nan
    b = float(last.median()) if len(last) else math.nan
    return {"start_mb": a, "end_mb": b, "growth": b / a - 1 if a > 0 else math.nan}


def _row(name: str, target: str, measured: str, met: bool, margin: str,
         value: float | None = None) -> dict[str, Any]:
    return {"target": name, "goal": target, "measured": measured, "met": bool(met),
            "margin": margin, "value": value}


def judge(rec: pd.DataFrame, samples: pd.DataFrame, timeline: Timeline, capacity: Capacity,
          targets: Targets = Targets()) -> dict[str, Any]:
    """The verdict (see the module docstring): ``rows`` (one per target: goal, measured,
    met, margin) and the figures behind them."""
    t_end = timeline.soak_end
    soak = rec[rec["intended_arrival"] < t_end]
    ok = soak[soak["status"].eq("ok")]
    rows = []

    goodput = len(ok) / t_end if t_end > 0 else 0.0
    need = targets.goodput_share * capacity.rps
    share = goodput / capacity.rps if capacity.rps > 0 else math.nan
    rows.append(_row(
        "goodput", f">= {targets.goodput_share:.0%} of capacity ({need:.1f} req/s of "
        f"{capacity.rps:.1f})", f"{goodput:.1f} req/s ({share:.0%} of capacity)",
        goodput >= need, _margin(goodput, need, "req/s", higher=True), share))

    p99 = float(np.percentile(ok["latency"], 99)) if len(ok) else math.nan
    limit = targets.p99_ratio * capacity.p99_s
    rows.append(_row(
        "ok p99", f"<= {targets.p99_ratio:g}x p99 at capacity ({limit * 1e3:.1f} ms)",
        f"{p99 * 1e3:.1f} ms ({p99 / capacity.p99_s:.2f}x)", p99 <= limit,
        _margin(p99 * 1e3, limit * 1e3, "ms", higher=False), p99))

    sent = soak[_sent(soak)]
    bad = sent[sent["status"].ne("ok") & ~_is_503(sent)]
    kinds = {
        "connection failures": int((bad["status"].eq("error") & bad["http_status"].eq(0)).sum()),
        "client timeouts": int((bad["status"].eq("timeout") & bad["http_status"].eq(0)).sum()),
        "other statuses": int(bad["http_status"].ne(0).sum()),
    }
    n503 = int(_is_503(sent).sum())
    rows.append(_row(
        "not ok = explicit 503", "every request not ok answered 503",
        f"{n503} x 503; " + ", ".join(f"{v} {k}" for k, v in kinds.items()),
        len(bad) == 0, "met" if len(bad) == 0 else f"{len(bad)} requests were not a 503",
        float(len(bad))))

    problems = []
    if timeline.crashed_at is not None:
        problems.append(f"server exited at {timeline.crashed_at:.1f} s before the SIGTERM")
    if timeline.kill_at is not None and timeline.replaced_s is None:
        problems.append("the killed worker was not replaced")
    if timeline.exit_code not in (None, 0):
        problems.append(f"exit code {timeline.exit_code} after SIGTERM")
    if timeline.exit_at is None and timeline.crashed_at is None and t_end < float(
            rec["intended_arrival"].max() if len(rec) else 0.0):
        problems.append("the server did not exit after SIGTERM")
    survived = []
    if timeline.replaced_s is not None:
        survived.append(f"worker replaced in {timeline.replaced_s * 1e3:.0f} ms")
    if timeline.exit_at is not None:
        survived.append(f"drained and exited {timeline.exit_code} "
                        f"{timeline.exit_at - t_end:.2f} s after SIGTERM")
    rows.append(_row("no crash", "up until SIGTERM, worker replaced, clean exit",
                     "; ".join(problems or survived or ["up"]), not problems,
                     "met" if not problems else "; ".join(problems)))

    growth = {}
    start = min(targets.rss_baseline_s, t_end / 2)
    for name, roles in (("server", ("server",)), ("total", None)):
        growth[name] = rss_growth(samples, roles, start, t_end, targets.rss_span_s)
    worst = max(g["growth"] for g in growth.values()) if growth else math.nan
    rows.append(_row(
        "RSS growth", f"< {targets.rss_growth:.0%} after {start:g} s",
        "; ".join(f"{k} {g['start_mb']:.0f} -> {g['end_mb']:.0f} MiB ({g['growth']:+.1%})"
                  for k, g in growth.items()),
        worst < targets.rss_growth, _margin(worst * 100, targets.rss_growth * 100,
                                            "points", higher=False), worst))

    until = timeline.exit_at if timeline.exit_at is not None else math.inf
    served = rec[rec["intended_arrival"] <= until]
    in_drain = served["intended_arrival"] >= t_end
    lost = served[failed_mask(served) & ~(in_drain & refused_mask(served))]
    lost_counts = {"total": len(lost)}
    if timeline.kill_at is not None:
        k = timeline.kill_at
        lost_counts["at_kill"] = int(lost["intended_arrival"].between(
            k - KILL_WINDOW_S, k + KILL_WINDOW_S).sum())
    lost_counts["in_drain"] = int((lost["intended_arrival"] >= t_end).sum())
    rows.append(_row(
        "requests lost", "0 (kill -9 of a worker, SIGTERM drain)",
        ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in lost_counts.items()),
        len(lost) == 0, "met" if len(lost) == 0 else f"{len(lost)} lost", float(len(lost))))

    after = rec[rec["intended_arrival"] > until]
    drain = rec[(rec["intended_arrival"] >= t_end) & (rec["intended_arrival"] <= until)]
    statuses = {str(k): int(v) for k, v in
                soak.assign(k=soak["http_status"].where(soak["http_status"] > 0, soak["status"]))
                ["k"].astype(str).value_counts().items()}
    return {
        "rows": rows,
        "met": all(r["met"] for r in rows),
        "capacity": asdict(capacity),
        "targets": asdict(targets),
        "timeline": asdict(timeline),
        "soak_requests": len(soak),
        "offered_rps": len(soak) / t_end if t_end > 0 else 0.0,
        "goodput_rps": goodput,
        "ok_p99_s": p99,
        "overloaded": goodput < OVERLOADED * (len(soak) / t_end if t_end > 0 else 0.0),
        "share_503": n503 / len(sent) if len(sent) else 0.0,
        "statuses": statuses,
        "not_sent": int(soak["status"].eq("not_sent").sum()),
        "rss": growth,
        "lost": lost_counts,
        "drain": {"requests": len(drain), "ok": int(drain["status"].eq("ok").sum()),
                  "rejected_503": int(_is_503(drain).sum()),
                  "refused": int((failed_mask(drain) & refused_mask(drain)).sum()),
                  "lost": int((failed_mask(drain) & ~refused_mask(drain)).sum())},
        "after_exit": {"requests": len(after),
                       "statuses": {str(k): int(v) for k, v in
                                    after["status"].value_counts().items()}},
    }


def _margin(value: float, limit: float, unit: str, higher: bool) -> str:
    """How far ``value`` is from ``limit`` (``higher``: the goal is value >= limit)."""
    if math.isnan(value) or math.isnan(limit):
        return "not measured"
    gap = value - limit if higher else limit - value
    rel = f" ({abs(gap) / limit:.0%})" if limit else ""
    word = "ahead by" if gap >= 0 else "short by"
    return f"{word} {abs(gap):.1f} {unit}{rel}"


def format_verdict(verdict: Mapping[str, Any]) -> str:
    """The verdict as a table, one target a line."""
    rows = verdict["rows"]
    w = [max(len(str(r[k])) for r in rows) for k in ("target", "goal", "measured")]
    lines = [f"{'target':<{w[0]}}  {'goal':<{w[1]}}  {'measured':<{w[2]}}  verdict"]
    for r in rows:
        verdict_word = "met" if r["met"] else "MISSED"
        margin = "" if r["margin"] == "met" else f" ({r['margin']})"
        lines.append(f"{r['target']:<{w[0]}}  {r['goal']:<{w[1]}}  {r['measured']:<{w[2]}}  "
                     f"{verdict_word}{margin}")
    return "\n".join(lines)
