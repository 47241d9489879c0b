"""``servelab sched-study``: FIFO vs Priority vs SJF (learned, oracle) vs MLFQ on the mixed
workload, in simulation and on live servers.

The question: how much does each queue policy help when fast requests (MobileNetV2, the LSTM)
share a server with slow ones (DistilBERT), and how does that depend on the concurrency model
and the load?  The study runs the mixed workload (all three models) at fractions of each
configuration's capacity (50%, 80%, 95% by default) under every policy:

* ``fifo``; ``priority`` (the workload's classes: MobileNetV2 0, LSTM 1, DistilBERT 2 —
  Cobham's non-preemptive priorities, FIFO within a class); ``sjf-mean`` (SJF on the per-model
  running mean: what a server can do without a trained predictor); ``sjf-learned`` (SJF on the
  gradient-boosting predictor of :mod:`servelab.analysis.predictor`); ``sjf-oracle`` (SJF on
  the true service time: simulation only — a live server learns a request's service time only
  by running it); ``mlfq`` (stage-boundary preemption, quanta 20 ms / 100 ms, boost every 1 s).

**Simulation** (cheap: the full grid by default): each concurrency model's capacity is the
completion rate of a saturated FIFO run; every (concurrency, load) cell uses one seed for all
policies, so the policies see the same arrivals and the same service times (common random
numbers).  The simulated learned predictor is trained on simulated FIFO traces of the same
configurations (other seeds).

**Live** (a bounded subset by default: one concurrency model, 4 policies, 3 loads, 30 s each):
phase 1 drives a FIFO server with the mixed workload at a rising ladder of rates — its
per-request traces train the learned predictor (with the calibration samples next to the
profile, when there are any) and its highest completion rate is the capacity; phase 2 starts
one server per policy (``--predictor <run>/predictor.joblib`` for ``sjf-learned``) and drives
it at each load with the same seeded workload.  Waits come from the servers' own traces
(``GET /servelab/trace``), so they are the engine's queueing times; the learned predictor is
then scored again on every phase-2 request it never saw in training.

Metrics, per (source, concurrency, load, policy), over the requests that arrived after the
warm-up:

* waiting time ``wait = start - enqueue`` (time to first service; under MLFQ the time a request
  spends requeued after a preemption shows in its sojourn, not in its wait): mean and p99 per
  model class, and overall;
* starvation: the longest wait of the slowest class (the class with the highest mean wait);
* Jain's fairness index over the classes' mean slowdowns, ``J = (sum x)^2 / (n sum x^2)``,
  ``x_c = mean sojourn of class c / mean service time of class c`` (the service time measured
  in the FIFO run of the same cell): 1 when every class is slowed down alike;
* throughput: completions inside the measured window per second.

``--theory`` also checks the simulator's FIFO and SJF mean waits against Pollaczek–Khinchine
and Phipps on the same mixed service-time distribution (:mod:`servelab.analysis.sched_theory`).

Results: ``results/sched-study-<stamp>/`` with ``sim.parquet``, ``live.parquet`` (one row per
cell), ``waits.parquet`` (per-request waits), ``live_records.parquet`` (the servers' traces of
phase 2), ``traces/phase1.parquet``, ``predictor.joblib``, ``theory.parquet``, ``waits.png``
and ``summary.json`` (with the command that reproduces the run).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from servelab.core.config import ServerConfig
from servelab.core.profile import Profile
from servelab.core.workload import WorkloadSpec

log = logging.getLogger(__name__)

STUDY_POLICIES: dict[str, tuple[str, str]] = {
    "fifo": ("fifo", "mean"),
    "priority": ("priority", "mean"),
    "sjf-mean": ("sjf", "mean"),
    "sjf-learned": ("sjf", "learned"),
    "sjf-oracle": ("sjf", "oracle"),
    "mlfq": ("mlfq", "mean"),
}
"""Study policy -> (queue policy, runtime predictor)."""
SIM_ONLY = ("sjf-oracle",)
LIVE_DEFAULT = ("fifo", "priority", "sjf-learned", "mlfq")
SHORT = {"mobilenet_v2": "mnet", "lstm_forecaster": "lstm", "distilbert": "bert"}
QUEUE_CAPACITY = 1024


def short(model: str) -> str:
    return SHORT.get(model, model[:6])


def study_config(concurrency: str, policy: str, workers: int, models: Sequence[str]) -> ServerConfig:
    """The configuration every cell uses: no model locks, a queue long enough for 95% load."""
    return ServerConfig(
        concurrency=concurrency, workers=workers, scheduler=STUDY_POLICIES[policy][0],
        model_lock="none", queue_capacity=QUEUE_CAPACITY, models=tuple(models),
    )


def at_rate(spec: WorkloadSpec, rate: float, duration: float, warmup: float, seed: int) -> WorkloadSpec:
    """``spec``'s mix, sizes and priorities at mean ``rate`` for ``duration`` seconds."""
    return replace(spec.scaled(rate / spec.mean_rate()), duration=duration, warmup_s=warmup,
                   seed=seed, phases=())


# -- metrics ------------------------------------------------------------------------------------


def jain(x: Sequence[float]) -> float:
    """Jain's fairness index of ``x`` (1 = all equal, 1/n = one takes everything)."""
    a = np.asarray([v for v in x if np.isfinite(v)], dtype=float)
    if a.size == 0 or not (a**2).sum() > 0:
        return math.nan
    return float(a.sum() ** 2 / (a.size * (a**2).sum()))


def measured(rec: pd.DataFrame, start: float) -> pd.DataFrame:
    """The ok requests that arrived after the warm-up, with wait, sojourn and service columns."""
    ok = rec[(rec["status"] == "ok") & (rec["enqueue"] >= start)]
    return ok.assign(
        wait=ok["start"] - ok["enqueue"], sojourn=ok["end"] - ok["enqueue"],
        service=ok["end"] - ok["start"],
    )


def cell_metrics(
    rec: pd.DataFrame, start: float, stop: float, models: Sequence[str],
    service_ref: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The study's metrics of one run (records with run-relative times; see the module doc)."""
    window = max(stop - start, 1e-12)
    ok_all = rec["status"] == "ok"
    done = ok_all & (rec["end"] >= start) & (rec["end"] <= stop)
    m = measured(rec, start)
    arrived = rec[rec["enqueue"] >= start]
    out: dict[str, Any] = {
        "requests": int(len(arrived)), "ok": int(len(m)),
        "rejected": int((arrived["status"] == "rejected").sum()),
        "timeout": int((arrived["status"] == "timeout").sum()),
        "error": int((arrived["status"] == "error").sum()),
        "offered": len(arrived) / window, "throughput": int(done.sum()) / window,
        "wait_mean": float(m["wait"].mean()) if len(m) else math.nan,
        "wait_p99": float(np.percentile(m["wait"], 99)) if len(m) else math.nan,
        "wait_max": float(m["wait"].max()) if len(m) else math.nan,
        "sojourn_mean": float(m["sojourn"].mean()) if len(m) else math.nan,
    }
    slow: list[float] = []
    worst, worst_mean = "", -1.0
    for model in models:
        g = m[m["model"] == model]
        w = g["wait"].to_numpy()
        n = len(g)
        service = (service_ref or {}).get(model, math.nan)
        if not math.isfinite(service):
            service = float(g["service"].mean()) if n else math.nan
        out[f"n_{model}"] = n
        out[f"wait_mean_{model}"] = float(w.mean()) if n else math.nan
        out[f"wait_p99_{model}"] = float(np.percentile(w, 99)) if n else math.nan
        out[f"wait_max_{model}"] = float(w.max()) if n else math.nan
        out[f"sojourn_mean_{model}"] = float(g["sojourn"].mean()) if n else math.nan
        out[f"sojourn_p99_{model}"] = float(np.percentile(g["sojourn"], 99)) if n else math.nan
        out[f"service_mean_{model}"] = float(g["service"].mean()) if n else math.nan
        x = out[f"sojourn_mean_{model}"] / service if n and service > 0 else math.nan
        out[f"slowdown_{model}"] = x
        slow.append(x)
        if n and out[f"wait_mean_{model}"] > worst_mean:
            worst, worst_mean = model, out[f"wait_mean_{model}"]
    out["jain"] = jain(slow)
    out["starved_class"] = worst
    out["starved_max_wait"] = out.get(f"wait_max_{worst}", math.nan) if worst else math.nan
    return out


def service_means(rec: pd.DataFrame, start: float) -> dict[str, float]:
    m = measured(rec, start)
    return {str(k): float(v) for k, v in m.groupby("model", observed=True)["service"].mean().items()}


def wait_rows(rec: pd.DataFrame, start: float, **labels: Any) -> pd.DataFrame:
    m = measured(rec, start)
    return pd.DataFrame({
        **{k: [v] * len(m) for k, v in labels.items()},
        "model": m["model"].astype(str).to_numpy(),
        "wait": m["wait"].to_numpy(dtype=np.float32),
        "sojourn": m["sojourn"].to_numpy(dtype=np.float32),
    })


# -- simulation ---------------------------------------------------------------------------------


def mean_service(profile: Profile, spec: WorkloadSpec, seed: int = 0) -> float:
    """Noise-free mean service time of ``spec``'s requests on ``profile`` (one request alone)."""
    arr = at_rate(spec, 100.0, 200.0, 0.0, seed).generate()
    total = 0.0
    for j, name in enumerate(arr.models):
        mp = profile.model(name)
        s = arr.input_size[arr.model_idx == j].astype(float)
        total += float((mp.preprocess.evaluate(s) + mp.forward.evaluate(s)
                        + mp.postprocess.evaluate(s)).sum())
    return total / max(len(arr), 1)


def sim_capacity(profile: Profile, spec: WorkloadSpec, concurrency: str, workers: int,
                 seed: int, requests: int = 6000) -> float:
    """Completion rate of a saturated FIFO server (offered 2.5x the naive capacity)."""
    from servelab.sim.run import simulate

    guess = min(workers, profile.machine.cores) / mean_service(profile, spec, seed)
    rate = 2.5 * guess
    wl = at_rate(spec, rate, requests / rate, 0.2 * requests / rate, seed + 7)
    res = simulate(study_config(concurrency, "fifo", workers, spec.models), wl, profile, seed=seed + 7)
    return float(res.summary["throughput"])


@dataclass
class SimStudy:
    cells: pd.DataFrame
    waits: pd.DataFrame
    capacity: dict[str, float]
    predictor_mape: dict[str, float]


def train_sim_predictor(
    profile: Profile, spec: WorkloadSpec, concurrencies: Sequence[str], workers: int,
    capacity: Mapping[str, float], loads: Sequence[float], requests: int, seed: int,
) -> tuple[Any, dict[str, float]]:
    """A learned predictor trained on simulated FIFO traces (other seeds), and its held-out MAPE."""
    from threadpoolctl import threadpool_limits

    from servelab.analysis import predictor as P
    from servelab.sim.run import simulate

    frames = []
    for conc in concurrencies:
        for k, load in enumerate(loads):
            rate = load * capacity[conc]
            wl = at_rate(spec, rate, requests / rate, 0.0, seed + 1000 + k)
            cfg = study_config(conc, "fifo", workers, spec.models)
            frames.append(simulate(cfg, wl, profile, seed=seed + 1000 + k).records)
    df = P.prepare(pd.concat(frames, ignore_index=True))
    fit, held = P.split(df, 0.25, seed)
    with threadpool_limits(1):  # OpenMP barriers spin badly on a busy 2-core machine
        pred = P.train(fit, seed=seed)
    return pred, P.evaluate(pred, held)


def run_sim(
    profile: Profile, spec: WorkloadSpec, concurrencies: Sequence[str], loads: Sequence[float],
    policies: Sequence[str], workers: int, requests: int, seed: int,
    learned: Any = None,
) -> SimStudy:
    """The simulated grid (see the module docstring)."""
    from threadpoolctl import threadpool_limits

    from servelab.core.learned import Context
    from servelab.sim.run import simulate

    capacity = {c: sim_capacity(profile, spec, c, workers, seed) for c in concurrencies}
    for c, cap in capacity.items():
        log.info("sim %s: capacity %.1f req/s", c, cap)
    mape: dict[str, float] = {}
    if "sjf-learned" in policies and learned is None:
        t = time.perf_counter()
        learned, mape = train_sim_predictor(
            profile, spec, concurrencies, workers, capacity, loads, max(requests // 4, 500), seed)
        log.info("sim predictor trained in %.1f s; held-out MAPE %.1f%%",
                 time.perf_counter() - t, mape["overall"])
    ordered = ["fifo"] + [p for p in policies if p != "fifo"]
    rows, waits = [], []
    for conc in concurrencies:
        for load in loads:
            rate = load * capacity[conc]
            duration = requests / rate
            warm = 0.1 * duration
            wl = at_rate(spec, rate, duration, warm, seed)
            ref: dict[str, float] | None = None
            for policy in ordered:
                if policy != "fifo" and policy not in policies:
                    continue
                cfg = study_config(conc, policy, workers, spec.models)
                kind = STUDY_POLICIES[policy][1]
                pred: Any = kind
                if kind == "learned":
                    learned.context = Context.for_config(cfg)
                    pred = learned
                t = time.perf_counter()
                with threadpool_limits(1):  # table builds: no OpenMP spinning on a busy machine
                    rec = simulate(cfg, wl, profile, seed=seed, predictor=pred).records
                if policy == "fifo":
                    ref = service_means(rec, warm)
                if policy not in policies:
                    continue
                row = cell_metrics(rec, warm, duration, spec.models, ref)
                rows.append({"source": "sim", "concurrency": conc, "load": load, "rate": rate,
                             "capacity": capacity[conc], "policy": policy, **row,
                             "sim_wall_s": time.perf_counter() - t})
                waits.append(wait_rows(rec, warm, source="sim", concurrency=conc, load=load,
                                       policy=policy))
    return SimStudy(pd.DataFrame(rows), pd.concat(waits, ignore_index=True), capacity, mape)


# -- live -----------------------------------------------------------------------------------


def shift_records(rec: pd.DataFrame) -> pd.DataFrame:
    """Server-trace records with times relative to the run's first arrival."""
    if rec.empty:
        return rec
    t0 = float(rec["intended_arrival"].min())
    return rec.assign(**{c: rec[c] - t0 for c in ("intended_arrival", "enqueue", "start", "end")})


def live_cell(srv: Any, spec: WorkloadSpec, config_id: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Drive a live server with ``spec``; its own trace of these requests (run-relative times)
    and the load generator's summary."""
    from servelab.loadgen.generator import SenderOptions
    from servelab.loadgen.runner import LoadConfig, run_load
    from servelab.results import records_frame

    n0 = int(srv.get("/servelab/stats")["records"])
    cfg = LoadConfig(target=srv.url, config_id=config_id, progress=False)
    run = run_load(cfg, SenderOptions(timeout=60.0), spec=spec, write=False)
    trace = srv.get("/servelab/trace")[n0:]
    return shift_records(records_frame(trace)), run.summary


def warm_server(srv: Any, spec: WorkloadSpec, rate: float, config_id: str, seconds: float,
                seed: int) -> None:
    """A short unrecorded run, so that no measured cell pays for a fresh server's first
    inferences (lazy initialisation, allocator growth)."""
    if seconds > 0:
        live_cell(srv, at_rate(spec, rate, seconds, 0.0, seed + 900), config_id)


@dataclass
class LivePhase1:
    capacity: float
    note: str
    traces: pd.DataFrame
    steps: list[dict[str, Any]]


def live_phase1(
    srv: Any, spec: WorkloadSpec, config_id: str, guess: float, step_s: float, seed: int,
    capacity: float | None = None, max_steps: int = 7,
) -> LivePhase1:
    """Traces for the predictor and the capacity: a FIFO server driven at a rising ladder of
    rates (:func:`servelab.loadgen.ladder.climb`: x1.3 a step from 0.4x ``guess``, the
    simulated capacity) up to the first step whose completions fall below 90% of the offered
    rate (or the load generator falls behind); the capacity is the highest completion rate
    seen.  With ``capacity`` given, three steps at 0.5, 0.8 and 1.0 of it (traces only)."""
    from servelab.loadgen.ladder import Step, climb, generator_behind, saturated

    traces: list[pd.DataFrame] = []
    steps: list[dict[str, Any]] = []

    def measure(rate: float) -> Step:
        k = len(steps)
        wl = at_rate(spec, rate, step_s, min(1.0, step_s / 4), seed + 500 + k)
        rec, client = live_cell(srv, wl, config_id)
        s = cell_metrics(rec, wl.warmup_s, wl.total_duration, spec.models)
        traces.append(rec.assign(step=k, rate=rate))
        gen = client["generator"]
        not_sent = gen["counts"]["not_sent"] / max(gen["scheduled"], 1)
        steps.append({"rate": rate, "throughput": s["throughput"], "wait_mean": s["wait_mean"],
                      "not_sent": not_sent})
        log.info("phase 1: %.1f req/s offered -> %.1f completed, mean wait %.0f ms",
                 rate, s["throughput"], s["wait_mean"] * 1e3)
        return Step(rate=rate, offered=s["offered"], throughput=s["throughput"],
                    not_sent=not_sent)

    if capacity:
        for f in (0.5, 0.8, 1.0):
            measure(f * capacity)
        return LivePhase1(capacity, f"given: {capacity:.1f} req/s",
                          pd.concat(traces, ignore_index=True), steps)
    ladder = climb(measure, 0.4 * guess, up=1.3, max_steps=max_steps, bisect=0,
                   rules=(generator_behind(0.02), saturated(0.9)))
    return LivePhase1(ladder.capacity, ladder.note, pd.concat(traces, ignore_index=True), steps)


def training_frame(traces: pd.DataFrame, samples: Path | None, variant: str) -> pd.DataFrame:
    from servelab.analysis import predictor as P

    frames = [traces]
    if samples is not None and samples.exists():
        cal = P.calibration_traces(pd.read_parquet(samples), variant)
        if len(cal):
            log.info("adding %d calibration samples from %s", len(cal), samples)
            frames.append(cal)
    return pd.concat(frames, ignore_index=True)


@dataclass
class LiveStudy:
    cells: pd.DataFrame
    waits: pd.DataFrame
    records: pd.DataFrame
    phase1: dict[str, Any]
    predictor: dict[str, Any]


def run_live(
    profile: Profile, spec: WorkloadSpec, concurrencies: Sequence[str], loads: Sequence[float],
    policies: Sequence[str], workers: int, out: Path, duration: float, warmup: float,
    step_s: float, variant: str, seed: int, predictor_path: Path | None = None,
    capacity: float | None = None, samples: Path | None = None, warm_s: float = 4.0,
) -> LiveStudy:
    from threadpoolctl import threadpool_limits

    from servelab.analysis import predictor as P
    from servelab.core import learned
    from servelab.core.learned import Context
    from servelab.results import write_parquet
    from servelab.servers.base import ServeOptions
    from servelab.servers.launch import ServerProcess

    bad = [p for p in policies if p in SIM_ONLY]
    if bad:
        raise ValueError(f"{bad}: the oracle needs a request's true service time before it runs; "
                         "live servers cannot know it (simulation only)")
    rows, waits, recs = [], [], []
    phase1: dict[str, Any] = {}
    pinfo: dict[str, Any] = {}
    for conc in concurrencies:
        cfg = study_config(conc, "fifo", workers, spec.models)
        guess = capacity or sim_capacity(profile, spec, conc, workers, seed)
        t = time.perf_counter()
        with ServerProcess(cfg, ServeOptions(port=0, variant=variant),
                           log=out / f"server-{conc}-phase1.log") as srv:
            warm_server(srv, spec, 0.3 * guess, cfg.config_id, warm_s, seed)
            p1 = live_phase1(srv, spec, cfg.config_id, guess, step_s, seed, capacity)
        write_parquet(out / "traces" / f"phase1-{conc}.parquet", p1.traces)
        phase1[conc] = {"capacity": p1.capacity, "note": p1.note, "steps": p1.steps,
                        "wall_s": time.perf_counter() - t}
        log.info("live %s: capacity %.1f req/s (%s)", conc, p1.capacity, p1.note)
        path = predictor_path
        if "sjf-learned" in policies and path is None:
            path = out / f"predictor-{conc}.joblib"
            df = P.prepare(training_frame(p1.traces, samples, variant))
            fit, held = P.split(df, 0.25, seed)
            t = time.perf_counter()
            with threadpool_limits(1):
                pred = P.train(fit, seed=seed)
            learned.save(pred, path)
            pinfo[conc] = {"path": str(path), "train_rows": len(fit), "held_out_rows": len(held),
                           "train_s": time.perf_counter() - t,
                           "held_out_mape": P.evaluate(pred, held)}
            ctx = Context.for_config(study_config(conc, "sjf-learned", workers, spec.models))
            with threadpool_limits(1):
                pinfo[conc]["us_per_prediction"] = P.prediction_cost_us(learned.load(path, ctx), held)
        for policy in policies:
            cfg = study_config(conc, policy, workers, spec.models)
            opts = ServeOptions(port=0, variant=variant, predictor=(
                str(path) if STUDY_POLICIES[policy][1] == "learned" and path else "mean"))
            with ServerProcess(cfg, opts, log=out / f"server-{conc}-{policy}.log") as srv:
                warm_server(srv, spec, 0.3 * p1.capacity, cfg.config_id, warm_s, seed)
                for load in loads:
                    rate = load * p1.capacity
                    wl = at_rate(spec, rate, duration, warmup, seed)
                    t = time.perf_counter()
                    rec, client = live_cell(srv, wl, cfg.config_id)
                    rec = rec.assign(concurrency=conc, load=load, policy=policy)
                    recs.append(rec)
                    lat, gen = client["latency_s"], client["generator"]
                    rows.append({
                        "source": "live", "concurrency": conc, "load": load, "rate": rate,
                        "capacity": p1.capacity, "policy": policy,
                        **cell_metrics(rec, warmup, duration, spec.models),
                        "preemptions": int(rec.loc[rec["enqueue"] >= warmup, "preemptions"]
                                           .sum()) if "preemptions" in rec else 0,
                        "client_p50_ms": lat["p50"] * 1e3,
                        "client_p99_ms": lat["p99"] * 1e3,
                        "client_not_sent": gen["counts"]["not_sent"],
                        "client_timeout": gen["counts"]["timeout"],
                        "lag_p99_ms": gen["lag_s"]["p99"] * 1e3,
                        "wall_s": time.perf_counter() - t,
                    })
                    waits.append(wait_rows(rec, warmup, source="live", concurrency=conc,
                                           load=load, policy=policy))
                    log.info("live %s %s %.0f%%: mean wait %.1f ms", conc, policy, load * 100,
                             rows[-1]["wait_mean"] * 1e3)
        # The learned predictor, scored on the phase-2 requests (collected after training).
        if path is not None and recs:
            own = pd.concat([r for r in recs if r["concurrency"].iloc[0] == conc and
                             r["policy"].iloc[0] != "mlfq"], ignore_index=True)
            if len(own):
                ctx = Context.for_config(study_config(conc, "sjf-learned", workers, spec.models))
                pinfo.setdefault(conc, {"path": str(path)})
                pinfo[conc]["phase2_rows"] = int(len(P.prepare(own)))
                pinfo[conc]["phase2_mape"] = P.evaluate(learned.load(path, ctx), own)
                pinfo[conc]["phase2_mape_floor"] = P.mape_floor(own)
                with threadpool_limits(1):
                    pinfo[conc]["phase2_us_per_prediction"] = P.prediction_cost_us(
                        learned.load(path, ctx), own)
                    pinfo[conc]["phase2_us_per_prediction_warm"] = P.prediction_cost_us(
                        learned.load(path, ctx), own, warm=True)
    cells = pd.DataFrame(rows)
    cells = _add_live_slowdown(cells, spec.models)
    return LiveStudy(cells, pd.concat(waits, ignore_index=True) if waits else pd.DataFrame(),
                     pd.concat(recs, ignore_index=True) if recs else pd.DataFrame(),
                     phase1, pinfo)


def _add_live_slowdown(cells: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """Recompute slowdowns and Jain with the FIFO cell's service times as the reference."""
    if cells.empty or "fifo" not in set(cells["policy"]):
        return cells
    cells = cells.copy()
    for i, row in cells.iterrows():
        ref = cells[(cells["policy"] == "fifo") & (cells["concurrency"] == row["concurrency"])
                    & (cells["load"] == row["load"])]
        if ref.empty:
            continue
        xs = []
        for m in models:
            s = float(ref[f"service_mean_{m}"].iloc[0])
            x = row[f"sojourn_mean_{m}"] / s if s > 0 else math.nan
            cells.at[i, f"slowdown_{m}"] = x
            xs.append(x)
        cells.at[i, "jain"] = jain(xs)
    return cells
