"""Section 5: can the meta-scheduler beat static configuration?

In simulation, :func:`servelab.meta.evaluate.evaluate` (``servelab meta eval``): every
registered policy cold and, where a ``meta train`` policy file exists, from its prior, next to
the oracle (best arm per phase, free switching), the best static arm, random and round-robin,
on held-out shifting workloads over the 36 default arms, with the profile's switching costs.
Live, the adaptive demo (:func:`servelab.analysis.adaptive_demo.run_demo`, ``servelab demo
--adaptive``): the gateway switching live backends on a shifting workload next to every static
arm on the same arrivals; ``--quick`` runs its tiny variant (about 2 minutes).  The same demo
(arms, workload, policy) is replayed in simulation for the fidelity line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from servelab.analysis.report.common import canvas, profile_flag, profile_note, profile_of
from servelab.analysis.report.section import Context, Figure, Section, Table

KEY = "meta"
TITLE = "Can the meta-scheduler beat static configuration?"
ORDER = 5

QUICK_WORKLOADS = ("shifting",)
BASELINES = ("oracle", "best-static", "random", "round-robin")


@dataclass(frozen=True)
class Plan:
    workloads: tuple[str, ...] | None  # None: every shipped shifting* workload
    demo_variant: str
    demo_duration: float | None
    demo_warm_s: float

    @classmethod
    def of(cls, quick: bool, variant: str) -> Plan:
        if quick or variant == "tiny":
            return cls(QUICK_WORKLOADS if quick else None, "tiny", 15.0, 1.0)
        return cls(None, variant, None, 6.0)


def prior_file(root: Path) -> Path | None:
    """The newest ``meta train`` policy file under ``root`` (``results/``) trained on the
    default arms, or None."""
    from servelab.meta.arms import load_arms
    from servelab.meta.train import load_policy_file

    arms = load_arms(None)
    for path in sorted(root.glob("meta-train-*/policy.json"), key=lambda p: p.stat().st_mtime,
                       reverse=True):
        try:
            load_policy_file(path, arms)
        except (ValueError, OSError, KeyError):
            continue
        return path
    return None


def simulate_eval(ctx: Context, plan: Plan, prior: Path | None) -> tuple[pd.DataFrame,
                                                                          pd.DataFrame]:
    from servelab.meta.arms import load_arms
    from servelab.meta.evaluate import evaluate
    from servelab.meta.policies import default_policies
    from servelab.meta.train import held_out_workloads, load_policy_file
    from servelab.results import RESULTS_ROOT
    from servelab.sim.executors import make_executor
    from servelab.sim.executors.local import default_jobs
    from servelab.sim.inputs import named_workload

    arms = load_arms(None)
    workloads = [named_workload(w) for w in plan.workloads] if plan.workloads else \
        held_out_workloads()
    pri = load_policy_file(prior, arms) if prior is not None else None
    with make_executor("local", jobs=default_jobs()) as ex:
        res = evaluate(workloads, profile_of(ctx), arms, default_policies(), ex,
                       ctx.cache / "meta-eval", prior=pri, cache_dir=RESULTS_ROOT / "meta-tables",
                       plots=False, progress=False)
    scores = pd.DataFrame(res.scores)
    scores["adaptation_s"] = scores["adaptation_s"].map(
        lambda v: " ".join("never" if a is None else f"{a:g}" for a in v))
    windows = pd.read_parquet(ctx.cache / "meta-eval" / "windows.parquet")
    keep = ["workload", "policy", "window", "t0", "phase", "served", "label", "reward", "norm",
            "oracle_reward", "oracle_label", "regret", "cum_regret"]
    return scores, windows[keep]


def run_live_demo(ctx: Context, plan: Plan) -> Path:
    """The adaptive demo, run into the report cache; its folder."""
    import shutil

    from servelab.analysis.adaptive_demo import DemoConfig, run_demo

    out = ctx.cache / f"meta-demo-{plan.demo_variant}"
    if out.exists():
        shutil.rmtree(out)
    cfg = DemoConfig(variant=plan.demo_variant, duration=plan.demo_duration,
                     warm_s=plan.demo_warm_s)
    profile = ctx.profile if plan.demo_variant == "full" else None
    cmd = demo_command(plan, ctx)
    run_demo(cfg, out, profile, cmd, say=lambda s: ctx.log("    " + s.replace("\n", "\n    ")))
    return out


def demo_command(plan: Plan, ctx: Context) -> str:
    if plan.demo_variant == "tiny":
        return "servelab demo --adaptive --variant tiny"
    return "servelab demo --adaptive" + profile_flag(ctx)


def live_windows(folder: Path) -> pd.DataFrame:
    import json

    from servelab.analysis.adaptive_scores import window_frame
    from servelab.core.workload import WorkloadSpec

    summary = json.loads((folder / "summary.json").read_text())
    spec = WorkloadSpec.from_dict(summary["workload"])
    records = pd.read_parquet(folder / "records.parquet")
    frames = []
    for run, rec in records.groupby("run", sort=False):
        w = window_frame(rec, spec.total_duration, float(summary["window_s"]))
        frames.append(pd.DataFrame({"run": str(run), "t0": w["t0"], "norm": w["norm"],
                                    "p99_s": w["p99_s"]}))
    return pd.concat(frames, ignore_index=True)


def sim_demo(ctx: Context, plan: Plan) -> pd.DataFrame:
    """The live demo's arms, workload and policy replayed in simulation: adaptive and every
    static arm's mean normalised reward."""
    from servelab.analysis.adaptive_demo import DEMO_ARMS, DEMO_WORKLOAD, FRESH_POLICY
    from servelab.loadgen.schedule import prepare_spec
    from servelab.meta.arms import arms_from_spec
    from servelab.meta.evaluate import evaluate
    from servelab.sim.executors import make_executor
    from servelab.workloads import load_workload

    arms = arms_from_spec(DEMO_ARMS)
    spec = prepare_spec(load_workload(DEMO_WORKLOAD), duration=plan.demo_duration, seed=None)
    with make_executor("local", jobs=1) as ex:
        res = evaluate([spec], profile_of(ctx), arms, [FRESH_POLICY], ex, ctx.cache / "meta-demo-sim",
                       plots=False, progress=False)
    rows = []
    for (wl, name), rep in res.replays.items():
        rows.append({"policy": name, "norm": float(rep.frame["norm"].mean())})
    table = res.tables[0]
    for a in range(table.n_arms):
        rows.append({"policy": f"static {arms[a].label}" if hasattr(arms[a], "label")
                     else f"static {table.arms.labels[a]}",
                     "norm": float(np.mean(table.norm[a]))})
    return pd.DataFrame(rows)


# -- figures ------------------------------------------------------------------------------------


def plot_shares(scores: pd.DataFrame, path: Any) -> None:
    wls = list(dict.fromkeys(scores.workload))
    names = list(dict.fromkeys(scores.policy))
    with canvas(path, 1, 1, (12, 5)) as (fig, axes):
        ax = axes[0][0]
        width = 0.8 / len(wls)
        for k, wl in enumerate(wls):
            d = scores[scores.workload == wl].set_index("policy")["oracle_share"]
            x = np.arange(len(names)) + (k - (len(wls) - 1) / 2) * width
            ax.bar(x, [d.get(n, np.nan) for n in names], width, label=wl)
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("oracle share (mean reward / oracle's)")
        ax.set_title("meta-scheduler policies and baselines, simulated, with switching costs",
                     fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, axis="y")


def plot_regret(windows: pd.DataFrame, path: Any) -> None:
    wls = list(dict.fromkeys(windows.workload))
    with canvas(path, 1, len(wls), (5 * len(wls), 4.2)) as (fig, axes):
        for j, wl in enumerate(wls):
            ax = axes[0][j]
            for name, g in windows[windows.workload == wl].groupby("policy", sort=False):
                if name == "oracle":
                    continue
                style = ":" if name in BASELINES else "-"
                ax.plot(g.t0, g.cum_regret, style, lw=1.1, label=str(name))
            ax.set_title(f"{wl}: cumulative regret", fontsize=9)
            ax.set_xlabel("time (s)")
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel("oracle reward - policy reward, cumulative")
        axes[0][-1].legend(fontsize=5, ncol=2)


def plot_adaptation(windows: pd.DataFrame, best: str, path: Any) -> None:
    wls = list(dict.fromkeys(windows.workload))
    with canvas(path, len(wls), 1, (11, 2.4 * len(wls))) as (fig, axes):
        for i, wl in enumerate(wls):
            ax = axes[i][0]
            w = windows[windows.workload == wl]
            b = w[w.policy == best]
            o = w[w.policy == "oracle"]
            labels = list(dict.fromkeys([*o.label, *b.label]))
            ax.step(o.t0, [labels.index(x) for x in o.label], where="post", color="black",
                    lw=2, label="oracle")
            ax.step(b.t0, [labels.index(x) for x in b.label], where="post", color="tab:red",
                    label=best)
            ax.set_yticks(range(len(labels)), labels, fontsize=6)
            ax.set_title(f"{wl}: arm served", fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="upper right")
        axes[-1][0].set_xlabel("time (s)")


def plot_live(windows: pd.DataFrame, table: pd.DataFrame, path: Any) -> None:
    with canvas(path, 1, 2, (12, 4), gridspec_kw={"width_ratios": [3, 1.3]}) as (fig, axes):
        ax = axes[0][0]
        for run, g in windows.groupby("run", sort=False):
            adaptive = str(run) == "adaptive"
            ax.plot(g.t0, g.norm, lw=2.2 if adaptive else 1, color="black" if adaptive else None,
                    alpha=1 if adaptive else 0.7, label=str(run))
        ax.set_xlabel("seconds")
        ax.set_ylabel("reward / offered per window")
        ax.set_title("live: adaptive gateway vs every static arm, same arrivals", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        ax = axes[0][1]
        ax.barh(table.run, table.reward, color=["black" if k == "adaptive" else "tab:blue"
                                                for k in table.kind])
        ax.set_xlabel("mean reward")
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(alpha=0.3, axis="x")


def span(x: pd.Series) -> str:
    """``0.62`` or ``0.61-0.93``: a range, one number when it has one value."""
    lo, hi = float(x.min()), float(x.max())
    return f"{lo:.2f}" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f}-{hi:.2f}"


def build(ctx: Context) -> Section:
    from servelab.analysis.adaptive_demo import FRESH_POLICY
    from servelab.results import RESULTS_ROOT

    plan = Plan.of(ctx.quick, ctx.variant)
    profile = profile_of(ctx)
    prior = prior_file(RESULTS_ROOT)
    meta = {"profile": profile.digest, "plan": plan.__dict__, "prior": str(prior)}
    memo: dict[str, Any] = {}

    def sim() -> tuple[pd.DataFrame, pd.DataFrame]:
        if "sim" not in memo:
            memo["sim"] = simulate_eval(ctx, plan, prior)
        return memo["sim"]  # type: ignore[no-any-return]

    def demo() -> Path:
        if "demo" not in memo:
            memo["demo"] = run_live_demo(ctx, plan)
        return memo["demo"]  # type: ignore[no-any-return]

    ctx.log("  meta eval in simulation (36 arms; reward tables cached in results/meta-tables) ...")
    scores = ctx.cached("meta-scores", lambda: sim()[0], meta)
    windows = ctx.cached("meta-windows", lambda: sim()[1], meta)
    ctx.log(f"  live adaptive demo ({plan.demo_variant} models) ...")
    dmeta = {"demo": plan.__dict__, "profile": profile.digest if plan.demo_variant == "full"
             else None}
    table = ctx.cached("meta-live-table", lambda: pd.read_parquet(demo() / "table.parquet"), dmeta)
    lwin = ctx.cached("meta-live-windows", lambda: live_windows(demo()), dmeta)
    simdemo = ctx.cached("meta-demo-sim", lambda: sim_demo(ctx, plan), meta)

    pol = scores[scores.kind == "policy"]
    by = pol.groupby("policy")["oracle_share"]
    best = max(by.groups, key=lambda p: (by.get_group(p).min(), by.get_group(p).mean()))
    bs = scores[scores.policy == "best-static"].set_index("workload")["oracle_share"]
    bp = pol[pol.policy == best].set_index("workload")["oracle_share"]
    beats = int((bp > bs.reindex(bp.index)).sum())
    eval_cmd = ("servelab meta eval" + profile_flag(ctx)
                + (f" --workload {' '.join(plan.workloads)}" if plan.workloads else "")
                + (f" --prior {prior}" if prior is not None else ""))
    figs = []
    png = ctx.figure_path("meta-oracle-share")
    plot_shares(scores, png)
    claim = (f"The best policy ({best}) reaches {span(bp)} of the per-phase "
             f"oracle; the best static arm {span(bs)}; it beats best static "
             f"on {beats} of {len(bp)} workloads.")
    figs.append(Figure("meta-oracle-share", png, scores, claim, eval_cmd, None,
                       "one seeded replay per policy and workload (no repeats)"))
    png = ctx.figure_path("meta-regret")
    plot_regret(windows, png)
    final = windows.groupby(["workload", "policy"])["cum_regret"].last().unstack("workload")
    figs.append(Figure("meta-regret", png, windows[["workload", "policy", "t0", "cum_regret"]],
                       f"Final cumulative regret, best policy {best}: "
                       + ", ".join(f"{w} {final.loc[best, w]:.0f}" for w in final.columns)
                       + "; best static: " + ", ".join(f"{w} {final.loc['best-static', w]:.0f}"
                                                       for w in final.columns) + ".",
                       eval_cmd, None, None))
    png = ctx.figure_path("meta-adaptation")
    plot_adaptation(windows, best, png)
    adapt = pol[pol.policy == best].set_index("workload")["adaptation_s"]
    figs.append(Figure("meta-adaptation", png,
                       windows[windows.policy.isin([best, "oracle"])][
                           ["workload", "policy", "t0", "label", "oracle_label"]],
                       f"Adaptation of {best} (seconds after each shift until its arm is within 5% "
                       "of the phase oracle for good): " + "; ".join(
                           f"{w}: " + ", ".join(f"shift {i} {x}{'' if x == 'never' else ' s'}"
                                                for i, x in enumerate(str(a).split(), 1))
                           for w, a in adapt.items()) + ".", eval_cmd, None, None))

    a_row = table[table.kind == "adaptive"].iloc[0]
    static = table[table.kind == "static"]
    best_static = static.loc[static.reward.idxmax()]
    share_live = float(a_row.reward / best_static.reward) if best_static.reward > 0 else math.nan
    sd = simdemo.set_index("policy")["norm"]
    sim_static = sd[[i for i in sd.index if str(i).startswith("static ")]]
    sim_name = f"{FRESH_POLICY} (cold)"
    share_sim = float(sd.get(sim_name, math.nan) / sim_static.max()) if len(sim_static) else \
        math.nan
    png = ctx.figure_path("meta-live")
    plot_live(lwin, table, png)
    fid = (f"adaptive / best static reward: simulated {share_sim:.2f} ({sim_name} on the same "
           f"arms and workload, profile {profile.machine.source}), live {share_live:.2f}")
    figs.append(Figure("meta-live", png, lwin,
                       f"Live, the adaptive gateway got reward {a_row.reward:.3f} = "
                       f"{share_live:.0%} of the best static arm ({best_static.run}, "
                       f"{best_static.reward:.3f}) with {int(a_row.switches)} switches and "
                       f"{int(a_row.lost_in_switches)} requests lost in them.",
                       demo_command(plan, ctx), fid, "a single live run per arm"))
    tab = Table("meta-live-table", table, "the live demo: every run's throughput, latency, "
                "reward, errors and switches", demo_command(plan, ctx))
    stab = Table("meta-scores", scores[["workload", "policy", "kind", "oracle_share",
                                        "oracle_share_norm", "switches", "switching_s", "regret",
                                        "adaptation_s"]], "simulated scores per workload",
                 eval_cmd)
    notes = []
    if plan.workloads:
        notes.append(f"--quick: held-out workloads {', '.join(plan.workloads)} only (the full "
                     "report runs every shipped shifting* workload; some, e.g. shifting-gil, "
                     "take many minutes to simulate over 36 arms on 2 cores: their heavy phases overload many arms).")
    if prior is None:
        notes.append("No meta train policy file under results/: policies ran cold only "
                     "(servelab meta train --quick gives them a prior).")
    if plan.demo_variant == "tiny":
        notes.append("The live demo ran the tiny models (15 s per run, no prior); its simulated "
                     f"counterpart uses the profile {profile.machine.source}, so the fidelity "
                     "line compares shapes, not absolute rewards.")
    if (pn := profile_note(ctx)) is not None:
        notes.append(pn)
    verdict = "does not beat" if beats == 0 else f"beats on {beats} of {len(bp)} workloads"
    answer = (f"Not on this machine: the best policy ({best}) {verdict} the best static "
              f"configuration in simulation (oracle share {span(bp)} vs "
              f"{span(bs)}), and live the adaptive gateway reached "
              f"{share_live:.0%} of the best static arm's reward (simulated: {share_sim:.0%}).")
    if beats == len(bp) and share_live >= 1:
        answer = (f"Yes: {best} beats the best static configuration on every workload "
                  f"(oracle share {span(bp)} vs {span(bs)}), and live reached {share_live:.0%} of the best static arm.")
    return Section(KEY, TITLE, answer, figs, [stab, tab], notes)
