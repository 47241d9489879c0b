"""Section 1: when does the GIL make threads slower than processes?

Two instruments.

* **Servers** — per model, a threads server and a processes server with 1, 2, 4, 8 workers,
  simulated (:func:`servelab.sim.run.simulate` under the profile) and live (``servelab serve``
  subprocesses driven by the load generator, :class:`~servelab.analysis.validate.backend.
  ServerBackend`): each configuration's capacity (the capacity ladder of
  :func:`servelab.loadgen.ladder.climb`, in the simulator from a low rate, live from 0.9x the
  simulated capacity) and its p99 at the model's common low rate (``LOW`` x the smallest
  simulated capacity of any configuration: a load every one of them sustains).  Sim and live are summarised by the same function
  (:func:`servelab.sim.run.summarize`).  The *crossover* is the smallest pool size at which
  processes serve at least ``CROSS`` x what threads serve.
* **Kernels** — the GIL study (:func:`servelab.analysis.gil_study.run_study`): the LSTM forward
  pass on torch, C releasing the GIL, C holding it and NumPy, looped in N threads of one process
  vs N processes.

``--quick``: live runs for MobileNetV2 and the LSTM at 1, 2 and 4 workers, one repeat, short
runs; the simulated grid in full, two noise seeds.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from servelab.analysis.report.common import (
    canvas,
    fidelity_line,
    profile_flag,
    profile_note,
    profile_of,
)
from servelab.analysis.report.section import Context, Figure, Section, Table
from servelab.core.config import ServerConfig
from servelab.core.profile import Profile
from servelab.core.workload import WorkloadSpec

KEY = "gil"
TITLE = "When does the GIL make threads slower than processes?"
ORDER = 1

MODELS = ("mobilenet_v2", "lstm_forecaster", "distilbert")
MODES = ("threads", "processes")
WORKERS = (1, 2, 4, 8)
LOW = 0.5
CROSS = 1.05
SHORT = {"mobilenet_v2": "MobileNetV2", "lstm_forecaster": "LSTM", "distilbert": "DistilBERT"}


@dataclass(frozen=True)
class Plan:
    live_models: tuple[str, ...]
    live_workers: tuple[int, ...]
    repeats: int
    run_s: float
    warm_s: float
    sim_seeds: int
    sim_requests: int
    kernel_s: float
    kernel_repeat: int
    step_s: float
    ladder_steps: int
    kernel_variants: tuple[str, ...] = ("torch", "c-release", "c-hold", "python")

    @classmethod
    def of(cls, quick: bool) -> Plan:
        if quick:
            # torch's kernel curve is left out: its spawned workers each import torch (minutes
            # on 2 cores); the servers' grid shows torch.
            return cls(("mobilenet_v2", "lstm_forecaster"), (1, 2, 4), 1, 3.0, 0.5, 2, 500,
                       0.5, 1, 2.5, 3, ("c-release", "c-hold", "python"))
        return cls(MODELS, WORKERS, 2, 10.0, 2.0, 3, 2000, 2.0, 3, 8.0, 6)


def config(mode: str, workers: int, models: Sequence[str]) -> ServerConfig:
    return ServerConfig(concurrency=mode, workers=workers, scheduler="fifo",
                        queue_capacity=64, models=tuple(models))


def spec_for(model: str, rate: float, duration: float, warm: float, seed: int) -> WorkloadSpec:
    return WorkloadSpec.from_dict({
        "name": f"{model}-poisson", "duration": duration, "warmup_s": warm, "seed": seed,
        "arrival": {"kind": "poisson", "rate": rate}, "mix": {model: 1.0}})


def figures_of(summary: dict[str, Any]) -> dict[str, float]:
    lat = summary["latency_s"]
    return {"throughput": float(summary["throughput"]), "p99_s": float(lat["p99"]),
            "p50_s": float(lat["p50"]), "offered": float(summary["offered_rate"]),
            "ok_share": summary["status"]["ok"] / max(int(summary["requests"]), 1)}


# -- simulated ----------------------------------------------------------------------------------


def sim_capacity(profile: Profile, model: str, mode: str, n: int, requests: int) -> float:
    """The capacity ladder of one configuration in the simulator (the live ladder's rules)."""
    from servelab.analysis.sched_study.sim import mean_service
    from servelab.loadgen.ladder import climb, step_from_summary
    from servelab.sim.run import simulate

    naive = min(n, profile.machine.cores) / mean_service(profile, spec_for(model, 10.0, 10.0,
                                                                            0.0, 0))

    def measure(rate: float) -> Any:
        dur = max(4.0, requests / rate)
        res = simulate(config(mode, n, (model,)), spec_for(model, rate, dur, 0.2 * dur, 7),
                       profile)
        return step_from_summary(rate, res.summary)

    return float(climb(measure, 0.3 * naive, up=1.3, max_steps=12).capacity)


def simulate_grid(profile: Profile, plan: Plan) -> pd.DataFrame:
    """Per model and configuration: its simulated capacity, and the p99 at the model's common
    low rate (``LOW`` x the smallest capacity of any configuration) over noise seeds."""
    from servelab.sim.run import simulate

    rows = []
    for model in MODELS:
        caps = {(mode, n): sim_capacity(profile, model, mode, n, plan.sim_requests)
                for mode in MODES for n in WORKERS}
        low = LOW * min(caps.values())
        dur = max(4.0, plan.sim_requests / low)
        spec = spec_for(model, low, dur, 0.2 * dur, 11)
        for (mode, n), cap in caps.items():
            rows.append({"source": "sim", "model": model, "mode": mode, "workers": n,
                         "level": "capacity", "rate": math.nan, "repeat": 0,
                         "throughput": cap, "p99_s": math.nan})
            for k in range(plan.sim_seeds):
                res = simulate(config(mode, n, (model,)), spec, profile, noise_seed=100 + k)
                rows.append({"source": "sim", "model": model, "mode": mode, "workers": n,
                             "level": "low", "rate": low, "repeat": k,
                             **figures_of(res.summary)})
    return pd.DataFrame(rows)


# -- live ---------------------------------------------------------------------------------------


def live_grid(plan: Plan, sim: pd.DataFrame, variant: str, log: Any) -> pd.DataFrame:
    """One server per (mode, workers) serving the live models; per model a warm-up, the common
    low rate (p99), then a short capacity ladder from 0.9x the simulated capacity."""
    from servelab.analysis.validate.backend import ServerBackend
    from servelab.loadgen.ladder import climb, step_from_summary
    from servelab.summary import Window, summarize

    low = sim[sim.level == "low"].groupby("model")["rate"].first()
    cap = sim[sim.level == "capacity"].set_index(["model", "mode", "workers"])["throughput"]
    backend = ServerBackend(variant=variant, timeout_s=30.0)
    rows = []
    try:
        for rep in range(plan.repeats):
            for n in plan.live_workers:
                for mode in MODES:
                    with backend.session(config(mode, n, plan.live_models)) as srv:
                        for model in plan.live_models:
                            srv.run(spec_for(model, low[model], plan.warm_s, 0.0, 900))
                            spec = spec_for(model, low[model], plan.run_s + plan.warm_s,
                                            plan.warm_s, 21 + rep)
                            s = summarize(srv.run(spec), Window.of(spec)).to_dict()
                            rows.append({"source": "live", "model": model, "mode": mode,
                                         "workers": n, "level": "low", "rate": low[model],
                                         "repeat": rep, "loadavg_1m": os.getloadavg()[0],
                                         **figures_of(s)})

                            def measure(rate: float, model: str = model, rep: int = rep,
                                        srv: Any = srv) -> Any:
                                sp = spec_for(model, rate, plan.step_s + plan.warm_s, plan.warm_s, 31 + rep)
                                return step_from_summary(rate, summarize(srv.run(sp), Window.of(sp)).to_dict())

                            lad = climb(measure, 0.9 * cap[(model, mode, n)], up=1.3,
                                        max_steps=plan.ladder_steps)
                            rows.append({"source": "live", "model": model, "mode": mode,
                                         "workers": n, "level": "capacity", "rate": math.nan,
                                         "repeat": rep, "throughput": lad.capacity,
                                         "p99_s": math.nan, "note": lad.note,
                                         "loadavg_1m": os.getloadavg()[0]})
                            log(f"    live {mode}x{n} {model}: capacity {lad.capacity:.1f} "
                                f"req/s ({lad.note}), p99 {rows[-2]['p99_s'] * 1e3:.0f} ms at "
                                f"{low[model]:.1f} req/s")
    finally:
        backend.close()
    return pd.DataFrame(rows)


# -- kernels ------------------------------------------------------------------------------------


def kernel_study(plan: Plan, variant: str) -> pd.DataFrame:
    from servelab.analysis.gil_study import StudyConfig, run_study

    saved = {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                             "MKL_NUM_THREADS")}
    os.environ.update({v: "1" for v in saved})  # oversubscription is the variable under study
    try:
        cfg = StudyConfig(variants=plan.kernel_variants, ops=("lstm",), workers=WORKERS, duration_s=plan.kernel_s,
                          warmup_s=0.1 if plan.kernel_s < 1 else 0.3, repeat=plan.kernel_repeat,
                          model_variant=variant)
        return run_study(cfg)
    finally:
        for v, old in saved.items():
            if old is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = old


# -- reading it ---------------------------------------------------------------------------------


def medians(df: pd.DataFrame) -> pd.DataFrame:
    cols = ["throughput", "p99_s"]
    g = df.groupby(["source", "model", "mode", "workers", "level"])[cols]
    out = g.median().join(g.min().add_suffix("_min")).join(g.max().add_suffix("_max"))
    return out.reset_index()


def crossover(med: pd.DataFrame, source: str, model: str) -> int | None:
    """Smallest pool size where processes' capacity is >= CROSS x threads'."""
    d = med[(med.source == source) & (med.model == model) & (med.level == "capacity")]
    t = d[d["mode"] == "threads"].set_index("workers")["throughput"]
    p = d[d["mode"] == "processes"].set_index("workers")["throughput"]
    for n in sorted(set(t.index) & set(p.index)):
        if p[n] >= CROSS * t[n]:
            return int(n)
    return None


def ratio(med: pd.DataFrame, source: str, model: str, n: int) -> float:
    d = med[(med.source == source) & (med.model == model) & (med.level == "capacity")
            & (med.workers == n)].set_index("mode")["throughput"]
    return float(d["processes"] / d["threads"]) if {"threads", "processes"} <= set(d.index) \
        and d["threads"] > 0 else math.nan


def plot_servers(med: pd.DataFrame, path: Any, cores: int) -> None:
    colors = {"threads": "tab:blue", "processes": "tab:red"}
    with canvas(path, 2, len(MODELS), (4.2 * len(MODELS), 7.5)) as (fig, axes):
        for j, model in enumerate(MODELS):
            for i, (level, col, label) in enumerate((("capacity", "throughput", "capacity (req/s)"),
                                                     ("low", "p99_s", "p99 latency (s)"))):
                ax = axes[i][j]
                for mode in MODES:
                    for source, style in (("sim", "--"), ("live", "-o")):
                        d = med[(med.source == source) & (med.model == model)
                                & (med["mode"] == mode) & (med.level == level)]
                        if d.empty:
                            continue
                        d = d.sort_values("workers")
                        ax.plot(d.workers, d[col], style, color=colors[mode],
                                label=f"{mode} {source}", alpha=0.8 if source == "sim" else 1)
                        ax.fill_between(d.workers, d[f"{col}_min"], d[f"{col}_max"],
                                        color=colors[mode], alpha=0.12)
                ax.set_xscale("log", base=2)
                ax.set_xticks(list(WORKERS), [str(w) for w in WORKERS])
                ax.axvline(cores, color="grey", ls=":", lw=0.9)
                if col == "p99_s":
                    ax.set_yscale("log")
                ax.set_xlabel("workers")
                ax.set_ylabel(label)
                what = "capacity" if level == "capacity" else \
                    f"p99 at {LOW:g}x the smallest capacity"
                ax.set_title(f"{SHORT[model]}: {what}", fontsize=9)
                ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=7)
        fig.suptitle(f"threads vs processes, simulated (dashed) and live (solid); dotted line: "
                     f"{cores} cores -- beyond it live runs only oversubscribe", fontsize=10)


def kernel_ratio(df: pd.DataFrame) -> pd.DataFrame:
    """Threads' calls/s over processes' at the same N (measured back to back, so both see about
    the same background load): median over repeats, per variant and N."""
    med = df.groupby(["variant", "mode", "workers"])["calls_per_s"].median().unstack("mode")
    return (med["threads"] / med["processes"]).rename("threads_over_processes").reset_index()


def plot_kernels(df: pd.DataFrame, path: Any, cores: int) -> None:
    colors = {"torch": "tab:blue", "c-release": "tab:green", "c-hold": "tab:red",
              "python": "tab:orange"}
    g = df.groupby(["variant", "mode", "workers"])["speedup"]
    med = g.median().rename("speedup").to_frame().join(g.min().rename("lo")).join(
        g.max().rename("hi")).reset_index()
    rat = kernel_ratio(df)
    with canvas(path, 1, 2, (12, 4.5)) as (fig, axes):
        ax = axes[0][0]
        for variant in dict.fromkeys(df.variant):
            for mode, style in (("threads", "-o"), ("processes", "--s")):
                d = med[(med.variant == variant) & (med["mode"] == mode)].sort_values("workers")
                ax.plot(d.workers, d.speedup, style, color=colors.get(variant),
                        label=f"{variant} {mode}")
                ax.fill_between(d.workers, d.lo, d.hi, color=colors.get(variant), alpha=0.1)
        ax.plot(WORKERS, [min(w, cores) for w in WORKERS], color="grey", lw=0.8, ls=":",
                label=f"ideal on {cores} cores")
        ax.set_ylabel("speedup over 1 worker")
        ax.set_title("LSTM forward pass per kernel: scaling", fontsize=10)
        ax.legend(fontsize=7, ncol=2)
        ax = axes[0][1]
        for variant, d in rat.groupby("variant", sort=False):
            ax.plot(d.workers, d.threads_over_processes, "-o", color=colors.get(str(variant)),
                    label=str(variant))
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_ylabel("threads' calls/s / processes' (same N, back to back)")
        ax.set_title("threads vs processes at the same N (< 1: the GIL costs)", fontsize=10)
        ax.legend(fontsize=7)
        for ax in axes[0]:
            ax.set_xscale("log", base=2)
            ax.set_xticks(list(WORKERS), [str(w) for w in WORKERS])
            ax.set_xlabel("workers (threads in one process, or processes)")
            ax.grid(alpha=0.3)


def _kernel_claim(df: pd.DataFrame, cores: int) -> tuple[str, dict[str, float]]:
    n = min(cores, max(df.workers))
    r = kernel_ratio(df).set_index(["variant", "workers"])["threads_over_processes"]
    get = {v: float(r.get((v, n), math.nan)) for v in ("c-release", "c-hold", "torch", "python")}
    others = float(df["others_cores"].median()) if "others_cores" in df else math.nan
    claim = (f"At N={n} threads serve {get['c-release']:.2f}x what processes do when the C "
             f"kernel releases the GIL and {get['c-hold']:.2f}x when the same code holds it"
             + "".join(f"; {v} {get[v]:.2f}x" for v in ("torch", "python")
                       if math.isfinite(get[v]))
             + f" (other jobs kept a median {others:.1f} cores busy during the points).")
    return claim, get


def build(ctx: Context) -> Section:
    from servelab.ffi.kernels import compiled_available

    plan = Plan.of(ctx.quick)
    profile = profile_of(ctx)
    cores = int(ctx.machine.get("cores") or os.cpu_count() or 1)
    meta = {"profile": profile.digest, "plan": plan.__dict__}
    ctx.log("  simulating threads vs processes x 1-8 workers per model ...")
    sim = ctx.cached("gil-sim", lambda: simulate_grid(profile, plan), meta)
    ctx.log(f"  live servers: {', '.join(plan.live_models)} x workers "
            f"{', '.join(map(str, plan.live_workers))} ...")
    live = ctx.cached("gil-live", lambda: live_grid(plan, sim, ctx.variant, ctx.log),
                      {**meta, "sim": float(sim.throughput.sum().round(3))})
    ctx.log(f"  kernel study (LSTM forward pass: {', '.join(plan.kernel_variants)} x threads/"
            "processes x 1-8) ...")
    kern = ctx.cached("gil-kernels", lambda: kernel_study(plan, ctx.variant), meta)
    med = medians(pd.concat([sim, live], ignore_index=True))

    png = ctx.figure_path("gil-servers")
    plot_servers(med, png, cores)
    cross = {m: {s: crossover(med, s, m) for s in ("sim", "live")} for m in MODELS}
    r2 = {m: {s: ratio(med, s, m, min(2, cores)) for s in ("sim", "live")} for m in MODELS}

    def xo(m: str, s: str) -> str:
        c = cross[m][s]
        if s == "live" and m not in plan.live_models:
            return "not run"
        return f"N={c}" if c is not None else "none"

    claim = ("; ".join(
        f"{SHORT[m]}: processes/threads capacity at N=2 {r2[m]['sim']:.2f}x sim"
        + (f", {r2[m]['live']:.2f}x live" if math.isfinite(r2[m]["live"]) else "")
        + f", crossover {xo(m, 'sim')} sim / {xo(m, 'live')} live" for m in MODELS)
        + f" (crossover: the smallest N at which processes' capacity is >= {CROSS:g}x threads').")
    paired = med[med.source == "sim"].merge(
        med[med.source == "live"], on=["model", "mode", "workers", "level"],
        suffixes=("_sim", "_live"))
    hi, lo = paired[paired.level == "capacity"], paired[paired.level == "low"]
    fid = "; ".join(x for x in (
        fidelity_line("capacity", hi.throughput_sim, hi.throughput_live),
        fidelity_line("p99 at the low rate", lo.p99_s_sim, lo.p99_s_live)) if x) or None
    q = " --quick" if ctx.quick else ""
    cmd = (f"servelab report --sections gil{q}{profile_flag(ctx)} (one simulated point: "
           f"servelab simulate --workload fast-only --concurrency processes --workers 4"
           f"{profile_flag(ctx)}; live capacities alone: servelab bench serve --servers threads "
           f"processes --pool-sizes {' '.join(map(str, plan.live_workers))} --models "
           f"{' '.join(plan.live_models)})")
    spread = (f"bands: min-max over {plan.sim_seeds} simulated noise seeds and "
              f"{plan.repeats} live repeat(s)")
    figs = [Figure("gil-servers", png, med, claim, cmd, fid, spread)]

    kpng = ctx.figure_path("gil-kernels")
    plot_kernels(kern, kpng, cores)
    kclaim, kget = _kernel_claim(kern, cores)
    kcmd = (f"servelab gil-study --ops lstm --variants {' '.join(plan.kernel_variants)} "
            f"--model-variant {ctx.variant}"
            + (" --quick" if ctx.quick else f" --repeat {plan.kernel_repeat}"))
    figs.append(Figure("gil-kernels", kpng, kern, kclaim, kcmd, None,
                       f"bands: min-max over {plan.kernel_repeat} repeat(s)"
                       if plan.kernel_repeat > 1 else None))

    fallback = sorted(set(kern.loc[kern.variant != kern.kernel_actual, "variant"]))
    notes = [f"This machine has {cores} usable cores: live curves stop at what {cores} cores "
             f"can show (beyond N={cores} workers they measure oversubscription, not scaling). "
             "The 16-core device machine's curve is not included in this report."]
    if ctx.quick:
        notes.append(f"--quick: live runs for {', '.join(SHORT[m] for m in plan.live_models)} "
                     f"only, at N = {', '.join(map(str, plan.live_workers))}, "
                     f"{plan.run_s:g} s per rate, one repeat.")
    if fallback:
        notes.append(f"No compiled build for {', '.join(fallback)} ({compiled_available()}): "
                     "the NumPy fallback was measured instead.")
    if (pn := profile_note(ctx)) is not None:
        notes.append(pn)
    la = live["loadavg_1m"].median() if "loadavg_1m" in live else math.nan
    if math.isfinite(la):
        notes.append(f"Median 1-minute load average during the live runs: {la:.2f}.")

    def when(m: str, s: str) -> str:
        c = cross[m][s]
        top = max(WORKERS if s == "sim" else plan.live_workers)
        return f"from N={c}" if c is not None else f"never up to N={top}"

    n_k = min(cores, max(WORKERS))
    busy = float(kern["others_cores"].median()) if "others_cores" in kern else 0.0
    answer = (
        "Processes out-serve threads (capacity >= " f"{CROSS:g}x) " + "; ".join(
            f"for {SHORT[m]} {when(m, 'sim')} in simulation"
            + (f" ({when(m, 'live')} live)" if m in plan.live_models else "")
            for m in MODELS)
        + f"; on the C kernels at N={n_k} threads reach {kget['c-release']:.2f}x processes' "
        f"throughput when the kernel releases the GIL vs {kget['c-hold']:.2f}x when it holds it, "
        f"measured at a median load average of {la:.1f} on {cores} cores"
        + (f" (other jobs held a median {busy:.1f} of the {cores} cores during the kernel "
           "points, so that comparison is not conclusive here)" if busy > 0.5 else "") + ".")
    table = Table("gil-crossover", pd.DataFrame([
        {"model": m, "crossover_sim": cross[m]["sim"], "crossover_live": cross[m]["live"],
         "procs_over_threads_N2_sim": r2[m]["sim"], "procs_over_threads_N2_live": r2[m]["live"]}
        for m in MODELS]), f"crossover: smallest N where processes serve >= {CROSS:g}x threads "
        "(capacity ladders)", cmd)
    return Section(KEY, TITLE, answer, figs, [table], notes)
