"""Fits for the live stages: co-run rates -> the GIL table, front-end runs -> front-end and
load-generator costs.  Pure functions of the benchmarks' raw results (see
:mod:`servelab.calibrate.benches.corun` and :mod:`servelab.calibrate.benches.frontend`)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from servelab.calibrate.fit import fit_gil
from servelab.core.profile import ClientCost, CostCurve, FrontEndCost, GilCost, ModelProfile

Result = Mapping[str, Any]


def gil_from_corun(results: Sequence[Result], cores: int) -> tuple[GilCost, dict[str, float]]:
    """The measured pair table, plus the fluid model's shares fitted to the model pairs."""
    pairs: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    obs = []
    for r in results:
        for p in r.get("pairs", []):
            a, b = p["a"], p["b"]
            pairs[a][b].append(float(p["rate_a"]))
            pairs[b][a].append(float(p["rate_b"]))
            if "frontend" not in (a, b):
                obs.append((a, b, float(p["rate_a"]), float(p["rate_b"])))
    if not pairs:  # not planned (--only): the fluid model from the shares applies
        return GilCost(), {}
    # A thread is never faster beside another than alone: a rate above 1 is the solo
    # measurement's noise, clipped.
    table = {a: {b: float(np.clip(np.mean(v), 1e-3, 1.0)) for b, v in row.items()}
             for a, row in pairs.items()}
    fit: dict[str, Any] = {}
    shares: dict[str, float] = {}
    if obs:
        f = fit_gil(obs, cores)
        shares = f.shares
        fit = {"method": "least squares of core.gil's fluid model to the model pairs",
               "shares": f.shares, "overhead": f.overhead, "rmse": f.rmse,
               "residuals": [{k: (float(v) if not isinstance(v, str) else v)
                              for k, v in row.items()} for row in f.residuals]}
    return GilCost(contention_overhead=float(fit.get("overhead", 0.0)), pairs=table,
                   fit=fit), shares


def cold_curves(results: Sequence[Result]) -> dict[str, tuple[tuple[float, float], ...]]:
    """Per model, the extra CPU after each idle gap over the back-to-back figure (the first
    gap, 0), made non-decreasing in the gap (a longer rest never warms a cache); extras
    under ``floor`` of the back-to-back time are measurement noise and count as none."""
    out = {}
    floor = 0.05
    for r in results:
        for name, m in r.get("models", {}).items():
            base = m["cpu_s"][0]
            raw = np.asarray(m["cpu_s"]) - base
            raw = np.where(raw < floor * base, 0.0, raw)
            extra = np.maximum.accumulate(raw)
            out[name] = tuple((float(g), float(x)) for g, x in zip(m["gaps_s"], extra,
                                                                  strict=True))
    return out


def _curve(points: Sequence[tuple[float, float]]) -> CostCurve:
    """Fixed cost for one size; piecewise-linear through the sizes for several."""
    pts = sorted((float(s), float(v)) for s, v in points if s > 0)
    if len(pts) == 1 or len({s for s, _ in pts}) == 1:
        return CostCurve(fixed_s=float(np.mean([v for _, v in pts])))
    (s0, v0), (s1, v1) = pts[0], pts[-1]
    slope = max((v1 - v0) / (s1 - s0), 0.0)
    fixed = max(v0 - slope * s0, 0.0)
    return CostCurve(fixed_s=fixed, points=tuple(pts))


def client_background(runs: Sequence[Mapping[str, Any]]) -> tuple[float, float]:
    """The generator's CPU that grows with time, not requests (timers, polling), in cores,
    and its mean per-request CPU: least squares of ``cpu = a T + b n`` over the runs."""
    rows = [(r["seconds"], r["requests"], r["client_s"] * r["requests"]) for r in runs
            if r.get("requests")]
    if len(rows) < 2:
        return 0.0, float(np.mean([r["client_s"] for r in runs])) if runs else 0.0
    a = np.array([[t, n] for t, n, _ in rows], dtype=float)
    y = np.array([c for _, _, c in rows], dtype=float)
    (bg, per), *_ = np.linalg.lstsq(a, y, rcond=None)
    if bg < 0 or per < 0:
        return 0.0, float(y.sum() / a[:, 1].sum())
    return float(bg), float(per)


LIGHT = {"mobilenet_v2": None, "lstm_forecaster": 96}
"""The runs whose latency is mostly path, not queueing (short requests at low load)."""


def handoff_latency(runs: Sequence[Mapping[str, Any]]) -> float:
    """The path's latency that takes no CPU: a light run's median latency minus the CPU one
    request costs on it (generator, front end, inference), the least over the light runs.
    The least, not the median: a disturbed run only adds time (over four quick calibrations
    the residuals were within +-1.3 ms but for one run in each of three, at 8-23 ms, which
    the median of two passed on whole)."""
    out = []
    for run in runs:
        if run["model"] not in LIGHT or not run.get("requests"):
            continue
        size = LIGHT[run["model"]]
        if size is not None and abs(run["size"] - size) > 1:
            continue
        lat = run.get("latency_p50_s", math.nan)
        if math.isfinite(lat):
            out.append(lat - run["client_s"] - run["frontend_s"] - run["inference_s"])
    return max(min(out), 0.0) if out else 0.0


def service_scales(runs: Sequence[Mapping[str, Any]],
                   models: Mapping[str, ModelProfile]) -> dict[str, float]:
    """Per model, the in-server inference CPU per request over the benchmarked service time
    at the run's size (median over its runs; clipped to [0.5, 3])."""
    by_model: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        mp = models.get(run["model"])
        if mp is None or not run.get("requests") or not run.get("inference_s"):
            continue
        solo = mp.mean_service(max(run["size"], 1.0))
        if solo > 0:
            by_model[run["model"]].append(run["inference_s"] / solo)
    return {m: float(np.clip(np.median(v), 0.5, 3.0)) for m, v in by_model.items()}


def inline_cost(thread: FrontEndCost, measured: Mapping[str, Any] | None,
                models: Mapping[str, ModelProfile]) -> FrontEndCost:
    """Async inline's front end: async-thread's (the same uvicorn/FastAPI path, serial, no
    convoy — inference runs on the loop's own thread).  Where inline was measured, the loop's
    CPU per request less that front end is inline's in-server inference: its own hand-off
    latency and (diagnostic) service scale."""
    if measured is None:
        return replace(thread, convoy={}, fit={
            "method": "async-thread's front end (inline not measured)"})
    runs = []
    for run in measured["runs"]:
        curve = thread.cpu.get(run["model"])
        if not run["requests"] or curve is None:
            continue
        fe = float(curve(run["size"] or 1.0))
        runs.append({**run, "frontend_s": fe, "inference_s": max(run["frontend_s"] - fe, 0.0)})
    return replace(
        thread, convoy={}, latency_s=handoff_latency(runs),
        service_scale={**thread.service_scale, **service_scales(runs, models)},
        fit={"method": "async-thread's front end; the loop's CPU per request less it is "
                       "inline's inference", "runs": runs})


def frontend_costs(results: Sequence[Result], gil: GilCost, notes: list[str],
                   models: Mapping[str, ModelProfile] | None = None) -> tuple[
        dict[str, FrontEndCost], ClientCost]:
    """Per setup, the front end's CPU per request per model and its convoy delays; the load
    generator's per-request CPU (pooled over setups, time-proportional part removed)."""
    out: dict[str, FrontEndCost] = {}
    client_runs: list[Mapping[str, Any]] = []
    inline: Mapping[str, Any] | None = None
    for r in results:
        setup = r["setup"]
        client_runs.extend(run for run in r["runs"] if run["requests"])
        if setup == "async-inline":
            inline = r  # its loop runs inference too: split below, on async-thread's front end
            continue
        by_model: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for run in r["runs"]:
            if run["requests"]:
                by_model[run["model"]].append((run["size"] or 1.0, run["frontend_s"]))
        cpu = {m: _curve(pts) for m, pts in by_model.items()}
        shared = setup in ("threads", "async-thread")
        convoy: dict[str, float] = {}
        if shared and cpu:
            # The probe's own front-end work beside model m is stretched by the GIL table:
            # what the CPU model already explains is taken out of the measured delay.
            probe_cpu = min(c(c.points[0][0]) if c.points else c.fixed_s for c in cpu.values())
            for m, delta in r["probe_delta_s"].items():
                rate = gil.pairs.get("frontend", {}).get(m)
                explained = probe_cpu * (1.0 / rate - 1.0) if rate else 0.0
                convoy[m] = max(float(delta) - explained, 0.0)
        out[setup] = FrontEndCost(
            cpu=cpu, convoy=convoy, serial=setup.startswith("async"),
            latency_s=handoff_latency(r["runs"]),
            service_scale=service_scales(r["runs"], models or {}),
            fit={"probe_idle_s": r["probe_idle_s"], "probe_delta_s": r["probe_delta_s"],
                 "runs": [{k: v for k, v in run.items()} for run in r["runs"]],
                 "inference_threads": r.get("inference_threads", 0)},
        )
    if "async-thread" in out:
        out["async-inline"] = inline_cost(out["async-thread"], inline, models or {})
    if not out:  # not planned: the simulator folds the microbenchmarked HTTP costs in
        return out, ClientCost()
    bg, per = client_background(client_runs)
    by_model = defaultdict(list)
    for run in client_runs:
        if run["requests"]:
            own = run["client_s"] - bg * run["seconds"] / run["requests"]
            by_model[run["model"]].append((run["size"] or 1.0, max(own, 0.0)))
    curves = {m: _curve([(s, float(np.median([v for s2, v in pts if s2 == s])))
                         for s in sorted({s for s, _ in pts})]) for m, pts in by_model.items()}
    if bg > 0:
        notes.append(f"load generator: {bg * 1e3:.1f} ms of CPU per second whatever the "
                     "rate (not modelled), plus its per-request CPU")
    return out, ClientCost(cpu=curves, colocated=True)


def describe(fe: Mapping[str, FrontEndCost], client: ClientCost, gil: GilCost) -> list[str]:
    """Lines for ``calibrate show``."""
    lines = []
    if gil.pairs:
        kinds = sorted(gil.pairs)
        lines.append("GIL co-run rates (row beside column, 1.0 = as alone):")
        lines.append("  " + " " * 16 + "".join(f"{k[:10]:>11}" for k in kinds))
        for a in kinds:
            lines.append(f"  {a:<16}" + "".join(
                f"{gil.pairs[a].get(b, math.nan):>11.2f}" for b in kinds))
        if gil.fit:
            lines.append(f"  fluid fit: shares {({k: round(v, 2) for k, v in gil.fit['shares'].items()})}"
                         f", overhead {gil.fit['overhead']:.2f}, rmse {gil.fit['rmse']:.3f}")
    for setup, f in fe.items():
        cpu = "  ".join(f"{m} {c(c.points[0][0] if c.points else 32) * 1e3:.2f}"
                        for m, c in f.cpu.items())
        conv = "  ".join(f"{m} {v * 1e3:.2f}" for m, v in f.convoy.items())
        scale = "  ".join(f"{m} x{v:.2f}" for m, v in f.service_scale.items())
        lines.append(f"front end {setup:<13}: CPU ms/request {cpu}; convoy ms {conv or '-'}; "
                     f"hand-off latency {f.latency_s * 1e3:.2f} ms; in-server inference "
                     f"{scale or '-'}")
    if client.cpu:
        lines.append("load generator CPU ms/request: " + "  ".join(
            f"{m} {c(c.points[0][0] if c.points else 32) * 1e3:.2f}" for m, c in client.cpu.items()))
    return lines
