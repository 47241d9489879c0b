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
of them in flight at some instant from a switch's start to :data:`DRAIN_MARGIN_S` after it
ended (the old backend's drain).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pandas as pd
import yaml

from servelab.analysis.live_oracle import format_scores, live_scores
from servelab.core.bandits.base import BanditPolicy
from servelab.core.profile import Profile
from servelab.core.workload import WorkloadSpec
from servelab.gateway.backends import BackendPool, process_key
from servelab.gateway.controller import Controller
from servelab.gateway.metrics import GatewayMetrics
from servelab.gateway.proxy import GatewayServer
from servelab.gateway.windows import WindowCollector
from servelab.meta.arms import ArmSet
from servelab.servers.base import ServeOptions

log = logging.getLogger(__name__)

T = TypeVar("T")

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

DRAIN_MARGIN_S = 2.0


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


@dataclass
class RunResult:
    """One live run: the client's records, the gateway's explanation and where time 0 was."""

    name: str
    kind: str  # "adaptive" | "static"
    records: pd.DataFrame
    meta: dict[str, Any]
    windows: list[dict[str, Any]]
    offset_s: float  # gateway time = client time + offset_s
    switches: list[dict[str, Any]] = field(default_factory=list)


class GatewayRig:
    """The gateway's event loop on a thread, and one :class:`BackendPool` every run shares."""

    def __init__(self, options: ServeOptions, max_warm: int, log_dir: Path | None) -> None:
        self.pool = BackendPool(options, max_warm=max_warm, log_dir=log_dir)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="gateway", daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 300.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def open(self, arms: ArmSet, policy: BanditPolicy, profile: Profile | None,
                   window_s: float, source: str) -> tuple[Controller, GatewayServer]:
        metrics = GatewayMetrics()
        ctl = Controller(arms, policy, self.pool, metrics, WindowCollector(profile), window_s,
                         policy_source=source)
        front = GatewayServer(ctl, metrics)
        await ctl.start()
        await front.start("127.0.0.1", 0)
        return ctl, front

    async def prewarm(self, arms: ArmSet) -> None:
        """Start one backend per server process the arms need, in parallel."""
        first = {process_key(a.config): a.config for a in reversed(arms)}
        await asyncio.gather(*(self.pool.get(c) for c in first.values()))

    async def close_run(self, ctl: Controller, front: GatewayServer) -> None:
        await front.close()
        await ctl.close(stop_backends=False)  # a switch still in flight is cancelled

    def close(self) -> None:
        try:
            self.call(self.pool.close(), timeout=120)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(30)


def send(spec: WorkloadSpec, url: str, variant: str, config_id: str) -> tuple[pd.DataFrame, float]:
    """Send ``spec`` open loop to ``url``; the per-request records and their time 0
    (CLOCK_MONOTONIC)."""
    from servelab.loadgen.accounting import build_records, merge_results
    from servelab.loadgen.generator import SenderOptions
    from servelab.loadgen.payloads import Payloads, Target, zoo_make_input
    from servelab.loadgen.processes import run_senders
    from servelab.loadgen.schedule import Schedule

    target = Target.parse(url)
    schedule = Schedule.from_spec(spec)
    payloads = Payloads.build(schedule, target, zoo_make_input(variant), seed=spec.seed)
    result = merge_results(run_senders(schedule, payloads, target, SenderOptions(), 1))
    return build_records(schedule, result, spec.warmup_s, config_id), float(result.t0)


def warm_spec(spec: WorkloadSpec, seconds: float) -> WorkloadSpec:
    """``seconds`` of every model of ``spec`` in equal shares, 4 req/s (at least two
    requests), with its input sizes."""
    models = spec.models
    sizes: dict[str, Any] = {}
    for p in spec.effective_phases():
        sizes.update(p.sizes or {})
    return WorkloadSpec.from_dict({
        "name": "warm-up", "duration": seconds, "seed": spec.seed + 1, "sizes": sizes,
        "arrival": {"kind": "constant", "rate": max(4.0, 2.0 / seconds)},
        "mix": {m: 1.0 / len(models) for m in models},
    })


def live_run(rig: GatewayRig, name: str, kind: str, arms: ArmSet, policy: BanditPolicy,
             source: str, spec: WorkloadSpec, cfg: DemoConfig,
             profile: Profile | None) -> RunResult:
    """One run: a gateway over ``arms`` with ``policy``, the workload through it, its record.
    The serving backend first gets ``cfg.warm_s`` of the workload's models sent to it
    directly (not through the gateway, so the policy learns nothing from it): a backend's first
    requests of a model run cold (one-time set-up per input shape), and a backend reused from
    an earlier run would otherwise be warmer than a fresh one."""
    t = time.perf_counter()
    ctl, front = rig.call(rig.open(arms, policy, profile, cfg.window_s, source))
    log.info("%s: gateway ready on %s in %.1f s", name, front.url, time.perf_counter() - t)
    try:
        if cfg.warm_s > 0 and ctl.current is not None:
            send(warm_spec(spec, cfg.warm_s), ctl.current.url, cfg.variant, "warm-up")
        records, t0 = send(spec, front.url, cfg.variant, name)
        with httpx.Client(timeout=30) as client:
            meta = client.get(f"{front.url}/servelab/meta").json()
            windows = client.get(f"{front.url}/servelab/timeseries?n=3600").json()
    finally:
        rig.call(rig.close_run(ctl, front))
    offset = t0 - float(meta["clock_monotonic_t0"])
    switches = [{**s, "t_client": round(s["t"] - offset, 3),
                 "start_client": round(s["t"] - s["seconds"] - offset, 3)}
                for s in meta["switches"] if s["kind"] != "start"]
    return RunResult(name, kind, records, meta, windows, offset, switches)


# -- figures ------------------------------------------------------------------------------------


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
    """Requests not answered 200 that were in flight during a switch (see the module
    docstring)."""
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
    """One line of the table."""
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
        "p50_ms": float(np.percentile(lat, 50) * 1e3) if lat.size else math.nan,
        "p99_ms": float(np.percentile(lat, 99) * 1e3) if lat.size else math.nan,
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


def format_table(table: pd.DataFrame) -> str:
    lines = [f"{'run':<28} {'thr/s':>6} {'p50 ms':>8} {'p99 ms':>8} {'reward':>7} "
             f"{'errors':>6} {'lost in switches':>16} {'switches':>8}"]
    for _, x in table.iterrows():
        lines.append(f"{x['run']:<28} {x['throughput_rps']:>6.1f} {x['p50_ms']:>8.1f} "
                     f"{x['p99_ms']:>8.1f} {x['reward']:>7.3f} {x['errors']:>6d} "
                     f"{x['lost_in_switches']:>16d} {x['switches']:>8d}")
    return "\n".join(lines)


def format_timeline(run: RunResult, spec: WorkloadSpec) -> str:
    """One line per switch: client time, phase, from → to, how, and why."""
    starts = spec.phase_starts()
    lines = []
    first = run.meta["switches"][0] if run.meta["switches"] else None
    if first is not None:
        lines.append(f"  start   on {first['to_label']} ({first['seconds']:.1f} s to ready)")
    how = {"inplace": "in place", "warm": "to a warm backend", "new": "a new backend started",
           "failed": "FAILED, stayed"}
    for s in run.switches:
        phase = int(np.searchsorted(starts, s["start_client"], side="right")) - 1
        lines.append(f"  t={s['start_client']:6.1f} s (phase {max(phase, 0) + 1}) "
                     f"{s['from_label']} -> {s['to_label']}: {how.get(s['kind'], s['kind'])}, "
                     f"serving from t={s['t_client']:.1f} s ({s['seconds']:.2f} s)"
                     f"\n      why: {s['reason']}\n      policy: {s['policy_reason']}")
    if not run.switches:
        lines.append("  no switch: the policy kept its first arm throughout")
    if run.meta.get("switching"):
        lines.append("  a switch was still in progress when the workload ended (cancelled)")
    return "\n".join(lines)


def plot_timeline(runs: Sequence[RunResult], spec: WorkloadSpec, window_s: float,
                  path: Path, title: str) -> Path:
    """p99 and reward per window for every run (the adaptive one bold), the adaptive run's arm
    over time, phases shaded and every switch marked with its target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    adaptive = next(r for r in runs if r.kind == "adaptive")
    labels = list(dict.fromkeys(a["label"] for a in adaptive.meta["arms"]))
    fig, axes = plt.subplots(3, 1, figsize=(10, 8.5), sharex=True,
                             gridspec_kw={"height_ratios": [3, 2, 1.4]})
    horizon = spec.total_duration
    for r in runs:
        w = window_frame(r.records, horizon, window_s)
        x = w["t0"].to_numpy() + window_s / 2
        style = {"lw": 2.2, "color": "black", "zorder": 5} if r.kind == "adaptive" else \
            {"lw": 1.0, "alpha": 0.75}
        axes[0].plot(x, w["p99_s"].to_numpy() * 1e3, label=r.name, **style)
        axes[1].plot(x, w["norm"].to_numpy(), label=r.name, **style)
    # The adaptive run's arm, window by window (gateway time -> client time).
    t = [w["t1"] - adaptive.offset_s for w in adaptive.windows]
    arm = [labels.index(adaptive.meta["arms"][w["arm"]]["label"]) if w["arm"] >= 0 else np.nan
           for w in adaptive.windows]
    axes[2].step(t, arm, where="pre", color="black")
    axes[2].set_yticks(range(len(labels)), labels, fontsize=7)
    axes[2].set_ylim(-0.5, len(labels) - 0.5)
    axes[2].set_xlim(0, horizon)
    starts = [*spec.phase_starts(), horizon]
    for ax in axes:
        for k in range(len(starts) - 1):
            if k % 2:
                ax.axvspan(starts[k], starts[k + 1], color="0.92", zorder=0)
        for s in adaptive.switches:  # from the switch's start to the new arm serving
            ax.axvspan(s["start_client"], s["t_client"], color="tab:red", alpha=0.12, lw=0)
            ax.axvline(s["t_client"], color="tab:red", ls="--", lw=0.9)
        ax.grid(alpha=0.3)
    for s in adaptive.switches:
        axes[0].annotate(f"→ {s['to_label']}", (s["t_client"], 1.0),
                         xycoords=("data", "axes fraction"), rotation=90, fontsize=7,
                         va="top", ha="right", color="tab:red")
    phases = spec.effective_phases()
    for k, p in enumerate(phases):
        mix = ", ".join(f"{m}" for m in (p.mix or {}))
        axes[0].text((starts[k] + starts[k + 1]) / 2, 0.02, f"{mix} {p.arrival.mean_rate:g}/s",
                     transform=axes[0].get_xaxis_transform(), ha="center", fontsize=7,
                     color="0.35")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("p99 per window (ms)")
    axes[0].legend(fontsize=7, loc="upper left")
    axes[1].set_ylabel("reward / offered")
    axes[2].set_ylabel("adaptive arm", fontsize=8)
    axes[2].set_xlabel("seconds since the first intended send")
    axes[0].set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# -- the demo -----------------------------------------------------------------------------------


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
