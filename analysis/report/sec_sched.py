"""Section 4: how do schedulers interact with concurrency?

FIFO, Priority, SJF (per-model running mean; the oracle in simulation; the learned predictor in
the full report) and MLFQ under threads, processes and asyncio on the mixed workload at
fractions of each configuration's capacity: mean and p99 wait per model class, starvation (the
longest wait of the worst-off class), Jain's fairness over the classes' slowdowns; the simulated
grid (:func:`servelab.analysis.sched_study.sim.run_sim`), live threads servers
(:func:`~servelab.analysis.sched_study.live.run_live`), and the simulator's FIFO and SJF mean
waits against Pollaczek-Khinchine and Phipps
(:func:`servelab.analysis.sched_study.theory.theory_check`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from servelab.analysis.report.common import (
    canvas,
    fidelity_line,
    pct,
    profile_flag,
    profile_note,
    profile_of,
)
from servelab.analysis.report.section import Context, Figure, Section, Table

KEY = "sched"
TITLE = "How do schedulers interact with concurrency?"
ORDER = 4

WORKLOAD = "mixed"
CONCURRENCY = ("threads", "processes", "async")
FOCUS_LOAD = 0.8


@dataclass(frozen=True)
class Plan:
    loads: tuple[float, ...]
    sim_policies: tuple[str, ...]
    live_policies: tuple[str, ...]
    sim_requests: int
    theory_requests: int
    theory_sample: int
    live_s: float
    live_warm_s: float
    trace_step_s: float
    server_warm_s: float

    @classmethod
    def of(cls, quick: bool) -> Plan:
        if quick:
            return cls((0.5, 0.8), ("fifo", "priority", "sjf-mean", "sjf-oracle", "mlfq"),
                       ("fifo", "priority", "sjf-mean", "mlfq"), 3000, 20000, 100_000, 10.0,
                       2.0, 3.0, 1.5)
        return cls((0.5, 0.8, 0.95), ("fifo", "priority", "sjf-mean", "sjf-learned",
                                      "sjf-oracle", "mlfq"),
                   ("fifo", "priority", "sjf-mean", "sjf-learned", "mlfq"), 20000, 60000,
                   400_000, 30.0, 5.0, 8.0, 4.0)


def _short(model: str) -> str:
    from servelab.analysis.sched_study.grid import short

    return short(model)


def plot_class_waits(cells: pd.DataFrame, models: list[str], path: Any) -> None:
    """Mean and p99 wait per class and policy, one column per concurrency model (simulated
    bars), live threads as black markers, at :data:`FOCUS_LOAD`."""
    at = cells[np.isclose(cells["load"], FOCUS_LOAD)]
    sim, live = at[at.source == "sim"], at[at.source == "live"]
    policies = list(dict.fromkeys(sim.policy))
    with canvas(path, 2, len(CONCURRENCY), (4.3 * len(CONCURRENCY), 7), sharey="row") as (
            fig, axes):
        width = 0.8 / max(len(models), 1)
        for j, conc in enumerate(CONCURRENCY):
            for i, stat in enumerate(("wait_mean", "wait_p99")):
                ax = axes[i][j]
                s = sim[sim.concurrency == conc].set_index("policy")
                lv = live[live.concurrency == conc].set_index("policy")
                for k, m in enumerate(models):
                    x = np.arange(len(policies)) + (k - (len(models) - 1) / 2) * width
                    y = [s[f"{stat}_{m}"].get(p, np.nan) * 1e3 for p in policies]
                    ax.bar(x, y, width, label=f"{_short(m)} (sim)", color=f"C{k}")
                    if not lv.empty:
                        yl = [lv[f"{stat}_{m}"].get(p, np.nan) * 1e3 for p in policies]
                        ax.scatter(x, yl, color="black", marker="D", s=14, zorder=5,
                                   label="live" if k == 0 else None)
                ax.set_xticks(range(len(policies)), policies, rotation=30, fontsize=8)
                ax.set_yscale("log")
                ax.set_title(f"{conc}: {'mean' if stat == 'wait_mean' else 'p99'} wait",
                             fontsize=9)
                ax.set_ylabel("ms")
                ax.grid(alpha=0.3, axis="y")
        axes[0][0].legend(fontsize=7)
        fig.suptitle(f"mixed workload at {FOCUS_LOAD:.0%} of each configuration's capacity: "
                     "wait per model class (bars: simulated, diamonds: live)", fontsize=10)


def plot_fairness(cells: pd.DataFrame, path: Any) -> None:
    with canvas(path, 1, 2, (11, 4)) as (fig, axes):
        for src, marker in (("sim", "o"), ("live", "D")):
            d = cells[cells.source == src]
            for c_i, conc in enumerate(CONCURRENCY):
                for load in sorted(set(d["load"])):
                    g = d[(d.concurrency == conc) & np.isclose(d["load"], load)]
                    if g.empty:
                        continue
                    lbl = f"{src} {conc} {load:.0%}"
                    ls = "-" if src == "sim" else ":"
                    alpha = 0.5 + 0.5 * load
                    axes[0][0].plot(g.policy, g.jain, marker=marker, ls=ls, color=f"C{c_i}",
                                    alpha=alpha, label=lbl)
                    axes[0][1].plot(g.policy, g.starved_max_wait, marker=marker, ls=ls,
                                    color=f"C{c_i}", alpha=alpha, label=lbl)
        axes[0][0].set_ylabel("Jain index over class slowdowns (1 = fair)")
        axes[0][1].set_ylabel("longest wait of the worst-off class (s)")
        axes[0][1].set_yscale("log")
        for ax in axes[0]:
            ax.tick_params(axis="x", rotation=30, labelsize=8)
            ax.grid(alpha=0.3)
        axes[0][1].legend(fontsize=6, ncol=2)
        axes[0][0].set_title("fairness", fontsize=9)
        axes[0][1].set_title("starvation", fontsize=9)


def plot_theory(theory: pd.DataFrame, path: Any) -> None:
    with canvas(path, 1, 1, (7, 4)) as (fig, axes):
        ax = axes[0][0]
        labels = [f"{r.policy}\nrho {r.rho:.2f}" for r in theory.itertuples()]
        x = np.arange(len(theory))
        ax.bar(x - 0.2, theory.theory_s * 1e3, 0.4, label="theory (P-K for FIFO, Phipps for SJF)")
        ax.bar(x + 0.2, theory.sim_s * 1e3, 0.4, yerr=theory.halfwidth_s * 1e3, capsize=3,
               label="simulated (95% batch-means CI)")
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_ylabel("mean wait (ms)")
        ax.set_title("M/G/1 on the mixed service-time distribution", fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y")


def cut(cells: pd.DataFrame, src: str, conc: str, load: float, policy: str,
        col: str = "wait_mean") -> float:
    g = cells[(cells.source == src) & (cells.concurrency == conc)
              & np.isclose(cells["load"], load)].set_index("policy")[col]
    if "fifo" not in g or policy not in g or not g["fifo"] > 0:
        return math.nan
    return float(1 - g[policy] / g["fifo"])


def build(ctx: Context) -> Section:
    from servelab.analysis.sched_study.live import run_live
    from servelab.analysis.sched_study.report import plot_waits
    from servelab.analysis.sched_study.sim import run_sim
    from servelab.analysis.sched_study.theory import theory_check
    from servelab.workloads import load_workload

    plan = Plan.of(ctx.quick)
    profile = profile_of(ctx)
    spec = load_workload(WORKLOAD)
    models = list(spec.models)
    meta = {"profile": profile.digest, "plan": plan.__dict__}
    memo: dict[str, Any] = {}

    def sim() -> Any:
        if "sim" not in memo:
            memo["sim"] = run_sim(profile, spec, CONCURRENCY, plan.loads, plan.sim_policies, 2,
                                  plan.sim_requests, 0)
        return memo["sim"]

    def live() -> Any:
        if "live" not in memo:
            folder = ctx.cache / f"sched-live{'-quick' if ctx.quick else ''}-{ctx.variant}"
            folder.mkdir(parents=True, exist_ok=True)
            memo["live"] = run_live(
                profile, spec, ["threads"], plan.loads, plan.live_policies, 2, folder,
                plan.live_s, plan.live_warm_s, plan.trace_step_s, ctx.variant, 0,
                warm_s=plan.server_warm_s)
        return memo["live"]

    ctx.log(f"  simulating {len(plan.sim_policies)} policies x {len(CONCURRENCY)} concurrency "
            f"models x loads {plan.loads} ...")
    sim_cells = ctx.cached("sched-sim-cells", lambda: sim().cells, meta)
    sim_waits = ctx.cached("sched-sim-waits", lambda: sim().waits, meta)
    ctx.log("  theory check (P-K, Phipps) ...")
    theory = ctx.cached("sched-theory", lambda: pd.DataFrame([r.row() for r in theory_check(
        profile, spec, (0.5, 0.8), plan.theory_requests, 0, plan.theory_sample)]), meta)
    ctx.log(f"  live threads x2 servers: {', '.join(plan.live_policies)} ...")
    live_cells = ctx.cached("sched-live-cells", lambda: live().cells, meta)
    live_waits = ctx.cached("sched-live-waits", lambda: live().waits, meta)
    cells = pd.concat([sim_cells, live_cells], ignore_index=True)

    q = " --quick" if ctx.quick else ""
    cmd = (f"servelab sched-study{profile_flag(ctx)} --loads {' '.join(map(str, plan.loads))} "
           f"--sim-policies {' '.join(plan.sim_policies)} --sim-requests {plan.sim_requests} "
           f"--live-policies {' '.join(plan.live_policies)} --live-duration {plan.live_s:g} "
           f"--live-warmup {plan.live_warm_s:g} --trace-step {plan.trace_step_s:g} "
           f"--variant {ctx.variant}  (or: servelab report --sections sched{q})")
    f_at = FOCUS_LOAD
    sjf = {c: cut(cells, "sim", c, f_at, "sjf-mean") for c in CONCURRENCY}
    sjf_live = cut(cells, "live", "threads", f_at, "sjf-mean")
    slow = max(models, key=lambda m: float(np.nan_to_num(
        sim_cells[f"service_mean_{m}"].mean())))
    slow_cut = {c: cut(cells, "sim", c, f_at, "sjf-mean", f"wait_mean_{slow}")
                for c in CONCURRENCY}

    figs = []
    png = ctx.figure_path("sched-class-waits")
    plot_class_waits(cells, models, png)
    pairs = sim_cells.merge(live_cells, on=["concurrency", "load", "policy"],
                            suffixes=("_sim", "_live")) if len(live_cells) else pd.DataFrame()
    fid = fidelity_line("mean wait per class (threads x2)",
                        [v for m in models for v in pairs.get(f"wait_mean_{m}_sim", [])],
                        [v for m in models for v in pairs.get(f"wait_mean_{m}_live", [])]) \
        if len(pairs) else None
    claim = (f"At {f_at:.0%} load, SJF on the running mean cuts the mean wait vs FIFO by "
             + ", ".join(f"{pct(sjf[c])} ({c})" for c in CONCURRENCY)
             + f" in simulation and {pct(sjf_live)} live (threads); the slow class "
             f"({_short(slow)}) pays for it: its mean wait changes by "
             + ", ".join(f"{-slow_cut[c]:+.0%}" if math.isfinite(slow_cut[c]) else "n/a"
                         for c in CONCURRENCY) + ".")
    figs.append(Figure("sched-class-waits", png, cells[[c for c in cells.columns if
                       c.startswith(("wait_", "n_")) or c in ("source", "concurrency", "load",
                                                            "policy", "rate", "capacity")]],
                       claim, cmd, fid, "a single run per cell (common random numbers across "
                       "the policies of a cell in simulation)"))

    png = ctx.figure_path("sched-fairness")
    plot_fairness(cells, png)
    jain = cells[(cells.source == "sim") & np.isclose(cells["load"], f_at)].set_index(
        ["concurrency", "policy"])["jain"]
    best = jain.groupby(level=1).mean().sort_values(ascending=False)
    starve = cells[(cells.source == "sim") & np.isclose(cells["load"], max(plan.loads))]
    worst = starve.loc[starve.starved_max_wait.idxmax()] if len(starve) else None
    claim = (f"Fairness (Jain over class slowdowns, {f_at:.0%} load, mean over concurrency "
             f"models): " + ", ".join(f"{p} {v:.2f}" for p, v in best.items())
             + (f"; the longest starvation at {max(plan.loads):.0%} load is "
                f"{worst.starved_max_wait:.2f} s ({_short(worst.starved_class)} under "
                f"{worst.policy}, {worst.concurrency})" if worst is not None else "") + ".")
    jp = pairs if len(pairs) else pd.DataFrame({"jain_sim": [], "jain_live": []})
    figs.append(Figure("sched-fairness", png, cells[["source", "concurrency", "load", "policy",
                                                     "jain", "starved_class",
                                                     "starved_max_wait"]], claim, cmd,
                       fidelity_line("Jain index (threads x2)", jp.jain_sim, jp.jain_live),
                       None))

    png = ctx.figure_path("sched-phipps")
    plot_theory(theory, png)
    th = theory.set_index(["policy", "rho"])
    parts = []
    for rho in sorted(set(theory.rho)):
        f, s = th.loc[("fifo", rho)], th.loc[("sjf-oracle", rho)]
        parts.append(f"rho {rho:.1f}: Phipps predicts SJF cuts the mean wait by "
                     f"{1 - s.theory_s / f.theory_s:.0%}, the simulator gives "
                     f"{1 - s.sim_s / f.sim_s:.0%} (errors vs theory: FIFO {f.error:+.1%}, "
                     f"SJF {s.error:+.1%})")
    agree = int(theory.agrees.sum())
    figs.append(Figure("sched-phipps", png, theory, "; ".join(parts) + f"; {agree} of "
                       f"{len(theory)} checks agree (within 5% or the CI).",
                       f"servelab sched-study{profile_flag(ctx)} --theory-requests "
                       f"{plan.theory_requests} --no-live", None,
                       "error bars: 95% batch-means confidence interval of the simulated mean"))

    waits = pd.concat([w for w in (sim_waits, live_waits) if len(w)], ignore_index=True)
    png = ctx.figure_path("sched-ccdf")
    plot_waits(waits, png, "threads")
    thr = waits[(waits.concurrency == "threads") & np.isclose(waits["load"], f_at)]
    p99 = thr.groupby(["policy", "source"])["wait"].quantile(0.99).unstack("source") * 1e3
    p99_txt = ", ".join(
        f"{p} {r.get('sim', math.nan):.0f}" + (f"/{r['live']:.0f}" if math.isfinite(
            r.get("live", math.nan)) else "") for p, r in p99.iterrows())
    figs.append(Figure("sched-ccdf", png, waits.groupby(
        ["source", "concurrency", "load", "policy", "model"], as_index=False)["wait"].describe(
            percentiles=[0.5, 0.9, 0.99]),
        f"Waiting-time distributions per policy on threads x2: p99 wait at {f_at:.0%} load "
        f"(ms, simulated/live) {p99_txt}.", cmd, None, None))

    cols = ["source", "concurrency", "load", "policy", "rate", "throughput", "wait_mean",
            "wait_p99", "jain", "starved_class", "starved_max_wait"]
    tab = Table("sched-cells", cells[[c for c in cols if c in cells.columns]],
                "every cell: throughput, waits (s), fairness, starvation", cmd)
    notes = []
    if ctx.quick:
        notes.append(f"--quick: loads {', '.join(f'{x:.0%}' for x in plan.loads)}, "
                     f"{plan.sim_requests} simulated requests per cell, live threads x2 only "
                     f"({plan.live_s:g} s per cell), no learned predictor.")
    if (pn := profile_note(ctx)) is not None:
        notes.append(pn)
    cuts = [v for v in sjf.values() if math.isfinite(v)]
    rises = [-v for v in slow_cut.values() if math.isfinite(v)]
    fair = best.index[0] if len(best) else "n/a"
    answer = (f"At {f_at:.0%} load SJF cuts the mean wait vs FIFO by "
              f"{pct(min(cuts, default=math.nan))}-{pct(max(cuts, default=math.nan))} under "
              f"every concurrency model in simulation ({pct(sjf_live)} live on threads) while "
              f"the slow class ({_short(slow)}) waits {pct(min(rises, default=math.nan))}-"
              f"{pct(max(rises, default=math.nan))} longer; {fair} is the fairest (Jain "
              f"{best.iloc[0]:.2f} vs FIFO {best.get('fifo', math.nan):.2f}), and Phipps' formula "
              f"matches the simulator's SJF ({agree}/{len(theory)} checks within 5% or the CI).")
    return Section(KEY, TITLE, answer, figs, [tab], notes)
