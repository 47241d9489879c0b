"""The adaptive demo (``servelab demo --adaptive``): the gateway live on a shifting workload,
next to every static arm on the same arrivals.

1. **Arms** — a handful of sensible ones (:data:`DEMO_ARMS`: threads ×2 FIFO and SJF, processes
   ×2, async over a thread pool ×2, serving MobileNetV2 and DistilBERT only), or ``--arms FILE``;
   written to ``arms.yaml`` in the run folder.
2. **Prior** — with a profile (``--profile``, else this machine's cached demo profile), ``meta
   train --quick`` on those arms in simulation (about 30 s) gives the policy its prior; without
   one, the policy starts fresh and learns from scratch.  The summary says which.
3. **Adaptive run** — the gateway (the same controller, backends and front ``servelab gateway``
   runs, on an event loop of its own thread) starts on its first arm's backend; the workload
   (default ``shifting-demo``: a low MobileNetV2 load, a high DistilBERT load, MobileNetV2 again)
   is sent open loop from the main thread.  Every other backend is started only when the policy
   first asks for it, under traffic: the switching cost is paid in the adaptive run
   (``--prewarm`` starts them all first, as a gateway that keeps every backend warm has them).
4. **Static runs** — each arm alone behind the same gateway (one arm: it never switches), same
   workload, same seed, so the same arrivals.  They reuse the backends warm from the adaptive
   run (started before their traffic when missing): the start-up cost is never charged to them.
5. **Report** — the timeline of switches with their reasons (from ``GET /servelab/meta``), one
   table (throughput, p50, p99, reward, errors, requests lost in switches), ``table.parquet`` /
   ``table.csv``, ``timeline.png`` and ``summary.json`` with the reproduce line.

Definitions.  All figures come from the client's own records (latency from the intended send
time).  *reward*: the meta-scheduler's window reward — throughput / (1 + p99 s) per decision
window, normalised by the window's offered rate (:func:`servelab.meta.windows.normalise`) —
averaged over the windows after the warm-up: what the policy maximises.  *errors*: requests
not answered 200 (503 refusals, 5xx, timeouts, connection failures).  *lost in switches*: those
of them in flight at some instant from a switch's start to
:data:`~servelab.analysis.adaptive_scores.DRAIN_MARGIN_S` after it ended (the old backend's
drain).

This module sets the demo up (arms, prior policy) and runs its steps in order, writing the run
folder; the live runs are :mod:`servelab.analysis.adaptive_runs`, the table's figures and the
live oracle :mod:`servelab.analysis.adaptive_scores`, the printed table and timeline and the
figure :mod:`servelab.analysis.adaptive_report`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from servelab.analysis.adaptive_report import format_table, format_timeline, plot_timeline
from servelab.analysis.adaptive_runs import GatewayRig, RunResult, live_run
from servelab.analysis.adaptive_scores import DRAIN_MARGIN_S, live_oracle, run_row
from servelab.analysis.live_oracle import format_scores
from servelab.core.workload import WorkloadSpec
from servelab.gateway.backends import process_key
from servelab.meta.arms import ArmSet
from servelab.servers.base import ServeOptions

DEMO_WORKLOAD = "shifting-demo"
DEMO_ARMS: dict[str, Any] = {
    "base": {"models": ["mobilenet_v2", "distilbert"]},
    "arms": [
        {"concurrency": "threads", "workers": 2, "scheduler": "fifo"},
        {"concurrency": "threads", "workers": 2, "scheduler": "sjf"},
        {"concurrency": "processes", "workers": 2, "scheduler": "fifo"},
        {"concurrency": "async", "offload": "thread", "workers": 2, "scheduler": "fifo"},
    ],
}
"""Four arms, three server processes (the two threads arms differ in the scheduler only: an
in-place change): few enough that a 2-core machine runs the demo in a few minutes."""

PRIOR_POLICY = "switch_aware:inner=linucb"
"""Trained by ``meta train`` when a profile is available (contextual: it maps the workload's
features to an arm, so its prior carries over to a workload it never saw)."""
FRESH_POLICY = "switch_aware:inner=ucb1"
"""Without a profile: the gateway's default, learning from scratch."""


@dataclass(frozen=True)
class DemoConfig:
    """What the adaptive demo runs (``servelab demo --adaptive`` builds it from its flags)."""

    workload: str = DEMO_WORKLOAD
    arms: str | None = None
    policy: str | None = None
    profile: str | None = None
    prior: bool = True
    variant: str = "full"
    duration: float | None = None
    window_s: float = 1.0
    max_warm: int | None = None
    seed: int | None = None
    prewarm: bool = False
    warm_s: float = 6.0


def demo_arms(cfg: DemoConfig, out: Path) -> tuple[ArmSet, Path]:
    """The arms (``--arms`` or :data:`DEMO_ARMS`), written to ``out/arms.yaml``."""
    from servelab.meta.arms import arms_from_spec, load_arms

    path = out / "arms.yaml"
    if cfg.arms is not None:
        arms = load_arms(cfg.arms)
        path.write_text(Path(cfg.arms).read_text() if Path(cfg.arms).suffix != ".json"
                        else yaml.safe_dump(arms.to_list()))
    else:
        arms = arms_from_spec(DEMO_ARMS)
        path.write_text(yaml.safe_dump(DEMO_ARMS, sort_keys=False))
    return arms, path


def prior_policy(cfg: DemoConfig, arms: ArmSet, arms_path: Path, profile_path: Path | None,
                 out: Path, say: Any) -> tuple[str, dict[str, Any]]:
    """The policy spec or file the adaptive run starts from, and how it was obtained."""
    if cfg.policy is not None:
        return cfg.policy, {"kind": "given", "policy": cfg.policy}
    if not cfg.prior or profile_path is None:
        why = "--no-prior" if not cfg.prior else "no profile (run servelab demo, or pass --profile)"
        return FRESH_POLICY, {"kind": "fresh", "policy": FRESH_POLICY, "why": why}
    from servelab.core.profile import load_profile
    from servelab.meta.cmd_train import add_arguments as train_args
    from servelab.meta.train import QUICK_WORKLOADS, train
    from servelab.reproduce import command_line, parse
    from servelab.sim.executors import make_executor
    from servelab.sim.executors.local import default_jobs

    prior_dir = out / "prior"
    targs = parse("meta train", train_args, [
        "--quick", "--profile", str(profile_path), "--arms", str(arms_path), "--policy",
        PRIOR_POLICY, "--window-s", f"{cfg.window_s:g}", "--out", str(prior_dir),
        "--no-progress"])
    command = command_line("meta train", train_args, targs)
    say(f"prior: {command}")
    t = time.perf_counter()
    with make_executor("local", jobs=default_jobs()) as ex:
        res = train(load_profile(profile_path), arms, [PRIOR_POLICY], ex, prior_dir,
                    n_workloads=QUICK_WORKLOADS, window_s=cfg.window_s, command=command,
                    progress=False)
    share = res.policies[PRIOR_POLICY]["training"]["train_oracle_share_mean"]
    say(f"  trained in {time.perf_counter() - t:.0f} s; oracle share on its training "
        f"workloads {share:.3f}")
    return str(res.path), {"kind": "prior", "policy": PRIOR_POLICY, "file": str(res.path),
                           "profile": str(profile_path), "command": command,
                           "train_oracle_share": share}


def run_demo(cfg: DemoConfig, out: Path, profile_path: Path | None, command: str,
             say: Any = print) -> dict[str, Any]:
    """Run the adaptive demo (see the module docstring); returns the summary written to
    ``out/summary.json``."""
    from servelab.core.profile import load_profile
    from servelab.gateway.serve import load_policy
    from servelab.loadgen.schedule import prepare_spec
    from servelab.meta.policies import make_policy
    from servelab.reproduce import run_metadata
    from servelab.results import write_json, write_parquet
    from servelab.workloads import load_workload

    meta = run_metadata(command)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    spec = prepare_spec(load_workload(cfg.workload), duration=cfg.duration, seed=cfg.seed)
    if spec.name == WorkloadSpec().name:
        spec = replace(spec, name=Path(cfg.workload).stem)
    arms, arms_path = demo_arms(cfg, out)
    say(f"workload {cfg.workload}: {spec.total_duration:g} s, phases "
        + " | ".join(f"{', '.join(p.mix or {})} {p.arrival.mean_rate:g}/s {p.duration:g} s"
                     for p in spec.effective_phases()) + f"; seed {spec.seed}")
    say(f"arms ({arms_path}): " + "; ".join(arms.labels))
    profile = load_profile(profile_path) if profile_path is not None else None
    policy_spec, prior = prior_policy(cfg, arms, arms_path, profile_path, out, say)
    policy, source = load_policy(policy_spec, arms, None, 0, cfg.window_s)
    if prior["kind"] == "fresh":
        say(f"policy: {source} — no prior ({prior['why']}): it learns from scratch")
    else:
        say(f"policy: {source}")
    keys = list(dict.fromkeys(process_key(a.config) for a in arms))
    max_warm = cfg.max_warm or len(keys)
    options = ServeOptions(port=0, variant=cfg.variant, drain_timeout_s=30)
    rig = GatewayRig(options, max_warm, out / "logs")
    runs: list[RunResult] = []
    try:
        if cfg.prewarm:
            t = time.perf_counter()
            rig.call(rig.prewarm(arms))
            say(f"prewarmed {len(keys)} backends in {time.perf_counter() - t:.1f} s: every "
                "switch goes to a warm one")
        say(f"\n-- adaptive run ({len(arms)} arms, {len(keys)} backend processes, "
            f"{cfg.window_s:g} s windows) --")
        t = time.perf_counter()
        runs.append(live_run(rig, "adaptive", "adaptive", arms, policy, source, spec, cfg,
                             profile))
        say(f"   {time.perf_counter() - t:.0f} s")
        say(format_timeline(runs[0], spec))
        quiet = logging.getLogger("servelab.gateway")
        level = quiet.level
        quiet.setLevel(logging.WARNING)  # a static run's only switch is its start
        for a in arms:
            t = time.perf_counter()
            single = ArmSet([a.config])
            runs.append(live_run(rig, f"static {a.label}", "static", single,
                                 make_policy("ucb1", 1, 0), f"static {a.label}", spec, cfg,
                                 profile))
            say(f"-- static {a.label}: {time.perf_counter() - t:.0f} s")
        quiet.setLevel(level)
        timings = [t.__dict__ for t in rig.pool.timings]
    finally:
        rig.close()
    table = pd.DataFrame([run_row(r, spec, cfg.window_s) for r in runs])
    static = table[table["kind"] == "static"]
    best = static.loc[static["reward"].idxmax()] if not static.empty else None
    table["reward_vs_best_static"] = table["reward"] / best["reward"] if best is not None \
        else math.nan
    write_parquet(out / "table.parquet", table)
    table.to_csv(out / "table.csv", index=False)
    records = pd.concat([r.records.assign(run=r.name) for r in runs], ignore_index=True)
    write_parquet(out / "records.parquet", records)
    title = (f"{spec.name}: adaptive gateway ({prior['kind']} {prior['policy']}) vs every static "
             f"arm, same arrivals (seed {spec.seed})")
    png = plot_timeline(runs, spec, cfg.window_s, out / "timeline.png", title)
    adaptive = runs[0]
    oracle = live_oracle(runs, arms, spec, cfg.window_s)
    summary = {
        **meta, "kind": "demo-adaptive", "workload": spec.to_dict(), "arms": arms.to_list(),
        "arms_file": str(arms_path), "variant": cfg.variant, "window_s": cfg.window_s,
        "max_warm": max_warm, "prewarm": cfg.prewarm, "warm_s": cfg.warm_s, "policy": {**prior, "source": source},
        "profile": str(profile_path) if profile_path is not None else None,
        "table": table.to_dict(orient="records"),
        "best_static": None if best is None else best["run"],
        "timeline": adaptive.switches, "start": adaptive.meta["switches"][:1],
        "switch_in_progress_at_end": bool(adaptive.meta.get("switching")),
        "arm_estimates": adaptive.meta["arms"], "backend_timings": timings,
        "live_oracle": oracle,
        "figures": {"table": {"parquet": str(out / "table.parquet"),
                              "csv": str(out / "table.csv"), "command": command},
                    "timeline": {"png": str(png), "command": command}},
        "definitions": {
            "reward": "mean over post-warm-up windows of throughput / (1 + p99 s) / offered",
            "errors": "requests not answered 200", "lost_in_switches":
            f"errors in flight from a switch's start to {DRAIN_MARGIN_S:g} s after it ended"},
        "wall_s": time.perf_counter() - t_all,
    }
    write_json(out / "summary.json", summary)
    say("\n" + format_table(table))
    if best is not None:
        a = table.iloc[0]
        say(f"adaptive reward {a['reward']:.3f} = {a['reward_vs_best_static']:.0%} of the best "
            f"static arm ({best['run']}, {best['reward']:.3f}); {a['switches']} switches, "
            f"{a['lost_in_switches']} requests lost in them, {a['http_5xx']} answered 5xx")
    say(format_scores(oracle, arms.labels))
    say(f"table: {out / 'table.csv'}  timeline: {png}\nreproduce: {command}")
    return summary
