"""Rewards per decision window: the reward table R[arm, window] of one workload.

Every arm is simulated over the *whole* workload with the same seed (so every arm sees the
same arrivals), and its per-request records are cut into decision windows (default 1 s).  Per
window and arm:

* ``throughput`` — requests completed ``ok`` in the window, per second;
* ``p95_s`` / ``p99_s`` — latency (end − intended arrival) of the requests completed in it;
* ``reward`` — the seed's ``throughput / (1 + p99 s)`` (``reward="reward"``, default) or the
  goodput under per-model SLOs (``reward="goodput"``: completions within their SLO, per s);
* ``norm`` — the reward divided by the window's offered rate (arrivals per second, at least one
  request per window), clipped to [0, 2]: the scale the bandits see.  Dividing every arm's
  reward in a window by one number keeps their ranking in that window and makes a quiet phase
  count as much as a busy one;
* ``cpu`` — the workers' busy share of the machine (service time overlapping the window over
  cores × window, clipped to 1: a proxy for CPU %), and ``memory`` (the arm's modelled
  resident memory over the machine's).

and per window, the same for every arm (the workload as the gateway sees it): ``offered``
(arrivals per second), the ``fast`` / ``medium`` / ``slow`` shares of arrivals by service class
(:func:`model_class`) and ``input_scale`` (mean input size over each model's nominal size).

The table is *counterfactual*: ``reward[a, w]`` is what arm ``a`` would have earned in window
``w`` had it served the workload from the start.  A policy replayed over it (``replay``) is
charged that arm's reward — with one approximation, stated here: the queue an arm inherits
after a switch is its own history's, not the previous arm's.  Phases are long next to a
window and the queues of arms that keep up are short, so this matters only for arms that were
overloaded just before; the oracle is found on the same table, so it is judged alike.

A decision at the start of window ``w`` sees the features of window ``w − 1`` as measured under
the arm that served it (:meth:`RewardTable.context`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from servelab.core.bandits.base import Context
from servelab.core.config import ServerConfig
from servelab.core.profile import Profile
from servelab.core.workload import DEFAULT_SIZES, SizeDist, WorkloadSpec
from servelab.meta.arms import ArmSet
from servelab.results import write_json, write_parquet
from servelab.sim.run import simulate
from servelab.summary import slo_seconds

log = logging.getLogger(__name__)

REWARDS = {
    "reward": "throughput / (1 + p99 s) per window (the seed's reward)",
    "goodput": "requests completed within their model's SLO per second",
}

MODEL_CLASSES: dict[str, str] = {
    "mobilenet_v2": "fast",
    "lstm_forecaster": "medium",
    "distilbert": "slow",
}
"""The service class of each zoo model, as the workloads describe them (``mixed``: "mostly
fast requests with a tail of slow ones"; ``shifting``'s "slow-heavy mix" is DistilBERT +
LSTM).  Other models are classed by their profiled mean service time (:func:`model_class`)."""

CLASS_THRESHOLDS_S = (0.010, 0.050)
"""Mean service time below which an unknown model is ``fast``, resp. ``medium``."""

DEFAULT_SLO_MS: dict[str, float] = {"fast": 100.0, "medium": 100.0, "slow": 1000.0}
"""Per-class latency SLOs for ``reward="goodput"`` when none are given."""

WINDOW_COLUMNS = (
    "window", "t0", "offered", "throughput", "p95_s", "p99_s", "reward", "goodput", "norm",
    "cpu", "fast", "medium", "slow", "input_scale",
)


def model_class(model: str, profile: Profile | None = None) -> str:
    """``fast``, ``medium`` or ``slow`` (see :data:`MODEL_CLASSES`)."""
    if model in MODEL_CLASSES:
        return MODEL_CLASSES[model]
    if profile is not None and model in profile.models:
        size = nominal_size(model)
        t = profile.models[model].mean_service(size)
        return "fast" if t < CLASS_THRESHOLDS_S[0] else "medium" if t < CLASS_THRESHOLDS_S[1] \
            else "slow"
    return "medium"


def _mean_size(d: SizeDist) -> float:
    if d.kind == "fixed":
        return float(d.value)
    if d.kind == "lognormal":
        return float(d.median)
    if d.kind == "choice":
        w = np.asarray(d.weights or [1.0] * len(d.values), dtype=float)
        return float(np.dot(np.asarray(d.values, dtype=float), w / w.sum()))
    return (d.low + d.high) / 2.0


def nominal_size(model: str) -> float:
    """A model's nominal input size: the centre of its default size distribution."""
    d = DEFAULT_SIZES.get(model)
    return _mean_size(d) if d is not None else 1.0


def default_slo(models: Iterable[str], profile: Profile | None = None) -> dict[str, float]:
    return {m: DEFAULT_SLO_MS[model_class(m, profile)] for m in models}


# -- one arm's records -> windows -------------------------------------------------------------


def cut_windows(
    records: pd.DataFrame,
    horizon: float,
    window_s: float = 1.0,
    cores: int = 1,
    slo_ms: float | Mapping[str, float] | None = None,
    classes: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Cut one run's per-request records into windows ``[k w, (k+1) w)`` for ``k`` up to
    ``ceil(horizon / w)`` (completions after the horizon are dropped).  Returns one row per
    window with the columns of :data:`WINDOW_COLUMNS` (``reward`` is the seed's reward;
    ``goodput`` is NaN without ``slo_ms``; ``norm`` is filled by :func:`normalise`)."""
    if window_s <= 0:
        raise ValueError(f"window_s must be > 0, got {window_s}")
    n = max(int(math.ceil(horizon / window_s - 1e-9)), 1)
    edges = np.arange(n + 1) * window_s
    arrival = records["intended_arrival"].to_numpy(dtype=float)
    models = records["model"].to_numpy(dtype=object)
    status = records["status"].to_numpy(dtype=object)
    end = records["end"].to_numpy(dtype=float)
    start = records["start"].to_numpy(dtype=float)
    sizes = records["input_size"].to_numpy(dtype=float)
    # Arrivals: the workload's features.
    aw = np.floor(arrival / window_s).astype(np.int64)
    ain = (aw >= 0) & (aw < n)
    offered = np.bincount(aw[ain], minlength=n) / window_s
    classes = classes or MODEL_CLASSES
    cls = np.array([classes.get(m, "medium") for m in models], dtype=object)
    share = {}
    counts = np.maximum(np.bincount(aw[ain], minlength=n), 1)
    for c in ("fast", "medium", "slow"):
        share[c] = np.bincount(aw[ain & (cls == c)], minlength=n) / counts
    nominal = {m: nominal_size(m) for m in set(models.tolist())}
    rel = sizes / np.array([nominal[m] for m in models], dtype=float) if len(models) else sizes
    scale_sum = np.bincount(aw[ain], weights=rel[ain], minlength=n)
    input_scale = np.where(np.bincount(aw[ain], minlength=n) > 0, scale_sum / counts, np.nan)
    # Completions: the arm's performance.
    ok = (status == "ok") & np.isfinite(end)
    ew = np.floor(np.where(ok, end, -1.0) / window_s).astype(np.int64)
    done = ok & (ew >= 0) & (ew < n)
    lat = end - arrival
    throughput = np.bincount(ew[done], minlength=n) / window_s
    p95 = np.full(n, np.nan)
    p99 = np.full(n, np.nan)
    idx = np.flatnonzero(done)
    order = idx[np.lexsort((lat[idx], ew[idx]))]
    bounds = np.searchsorted(ew[order], np.arange(n + 1))
    for k in range(n):
        lo, hi = bounds[k], bounds[k + 1]
        if hi > lo:
            p95[k], p99[k] = np.percentile(lat[order[lo:hi]], [95, 99])
    reward = np.where(np.isfinite(p99), throughput / (1.0 + np.nan_to_num(p99)), 0.0)
    goodput = np.full(n, np.nan)
    if slo_ms is not None:
        slo = slo_seconds(slo_ms, models[done]) if done.any() else np.empty(0)
        good = lat[done] <= slo
        goodput = np.bincount(ew[done][good], minlength=n) / window_s
    # Busy share: service time (start..end) overlapping each window, over cores x window.
    served = np.isfinite(start) & np.isfinite(end) & (status != "rejected")
    s, d = start[served], np.maximum(end[served] - start[served], 0.0)
    busy = np.zeros(n)
    if s.size:
        cum = np.empty(n + 1)
        for j in range(0, n + 1, 64):  # chunks keep the edges x requests matrix small
            e = edges[j:j + 64, None]
            cum[j:j + 64] = np.clip(e - s[None, :], 0.0, d[None, :]).sum(axis=1)
        busy = np.diff(cum)
    cpu = np.clip(busy / (max(cores, 1) * window_s), 0.0, 1.0)
    return pd.DataFrame({
        "window": np.arange(n), "t0": edges[:-1], "offered": offered, "throughput": throughput,
        "p95_s": p95, "p99_s": p99, "reward": reward, "goodput": goodput,
        "norm": np.full(n, np.nan), "cpu": cpu, "fast": share["fast"],
        "medium": share["medium"], "slow": share["slow"], "input_scale": input_scale,
    })


NORM_CLIP = 2.0


def normalise(reward: np.ndarray, offered: np.ndarray, window_s: float) -> np.ndarray:
    """``reward / max(offered, 1 request per window)``, clipped to [0, :data:`NORM_CLIP`]."""
    return np.clip(reward / np.maximum(offered, 1.0 / window_s), 0.0, NORM_CLIP)


# -- the table ----------------------------------------------------------------------------------


@dataclass
class RewardTable:
    """What every arm earned in every window of one workload (arms × windows arrays)."""

    workload: str
    arms: ArmSet
    window_s: float
    reward_kind: str
    reward: np.ndarray  # raw reward, arms x windows
    norm: np.ndarray  # normalised reward (what policies see)
    throughput: np.ndarray
    p95: np.ndarray
    p99: np.ndarray
    cpu: np.ndarray
    memory: np.ndarray  # per arm, share of the machine's memory
    offered: np.ndarray  # per window
    mix: np.ndarray  # windows x 3 (fast, medium, slow)
    input_scale: np.ndarray  # per window
    phase: np.ndarray  # phase index of each window
    phase_starts: tuple[float, ...]
    meta: dict[str, Any]

    @property
    def n_arms(self) -> int:
        return int(self.reward.shape[0])

    @property
    def n_windows(self) -> int:
        return int(self.reward.shape[1])

    @property
    def n_phases(self) -> int:
        return len(self.phase_starts)

    def phase_windows(self, k: int) -> np.ndarray:
        return np.flatnonzero(self.phase == k)

    def context(self, arm: int | None, w: int) -> Context:
        """The features of window ``w`` as seen while ``arm`` served it (``w < 0``: nothing
        seen yet, the default context)."""
        if w < 0 or w >= self.n_windows:
            return Context()
        a = 0 if arm is None else int(arm)
        p95, p99 = self.p95[a, w], self.p99[a, w]
        scale = self.input_scale[w]
        return Context(
            rate=float(self.offered[w]), fast=float(self.mix[w, 0]),
            medium=float(self.mix[w, 1]), slow=float(self.mix[w, 2]),
            cpu=float(self.cpu[a, w]), memory=float(self.memory[a]),
            p95_s=float(p95) if math.isfinite(p95) else 0.0,
            p99_s=float(p99) if math.isfinite(p99) else 0.0,
            input_scale=float(scale) if math.isfinite(scale) else 1.0,
        )

    # -- disk form: one long Parquet table + the metadata in a JSON next to it ------------
    def to_frame(self) -> pd.DataFrame:
        n_a, n_w = self.reward.shape
        arm = np.repeat(np.arange(n_a), n_w)
        win = np.tile(np.arange(n_w), n_a)
        return pd.DataFrame({
            "arm": arm, "arm_id": np.repeat(np.array(self.arms.ids, dtype=object), n_w),
            "window": win, "t0": win * self.window_s, "phase": self.phase[win],
            "reward": self.reward.ravel(), "norm": self.norm.ravel(),
            "throughput": self.throughput.ravel(), "p95_s": self.p95.ravel(),
            "p99_s": self.p99.ravel(), "cpu": self.cpu.ravel(),
            "memory": np.repeat(self.memory, n_w), "offered": self.offered[win],
            "fast": self.mix[win, 0], "medium": self.mix[win, 1], "slow": self.mix[win, 2],
            "input_scale": self.input_scale[win],
        })

    def header(self) -> dict[str, Any]:
        return {
            "workload": self.workload, "arms": self.arms.to_list(), "window_s": self.window_s,
            "reward_kind": self.reward_kind, "phase_starts": list(self.phase_starts),
            "meta": self.meta,
        }

    def save(self, path: Path) -> None:
        """``path`` (.parquet) and its header ``path.with_suffix('.json')``; the Parquet is
        written last, so its presence means the table is complete."""
        path = Path(path)
        write_json(path.with_suffix(".json"), self.header())
        write_parquet(path, self.to_frame())

    @classmethod
    def load(cls, path: Path) -> RewardTable:
        path = Path(path)
        head = json.loads(path.with_suffix(".json").read_text())
        return cls.from_frame(pd.read_parquet(path), head)

    @classmethod
    def from_frame(cls, df: pd.DataFrame, head: Mapping[str, Any]) -> RewardTable:
        arms = ArmSet.from_list(head["arms"])
        n_a = len(arms)
        df = df.sort_values(["arm", "window"])
        n_w = int(df["window"].max()) + 1

        def grid(col: str) -> np.ndarray:
            return df[col].to_numpy(dtype=float).reshape(n_a, n_w)

        first = df[df["arm"] == 0]
        return cls(
            workload=str(head["workload"]), arms=arms, window_s=float(head["window_s"]),
            reward_kind=str(head["reward_kind"]), reward=grid("reward"), norm=grid("norm"),
            throughput=grid("throughput"), p95=grid("p95_s"), p99=grid("p99_s"),
            cpu=grid("cpu"), memory=grid("memory")[:, 0],
            offered=first["offered"].to_numpy(dtype=float),
            mix=first[["fast", "medium", "slow"]].to_numpy(dtype=float),
            input_scale=first["input_scale"].to_numpy(dtype=float),
            phase=first["phase"].to_numpy(dtype=np.int64),
            phase_starts=tuple(float(x) for x in head["phase_starts"]),
            meta=dict(head.get("meta", {})),
        )


def assemble(
    workload: WorkloadSpec,
    arms: ArmSet,
    frames: Sequence[pd.DataFrame],
    window_s: float,
    reward_kind: str = "reward",
    memory: Sequence[float] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> RewardTable:
    """Stack per-arm window frames (from :func:`cut_windows`, in arm order) into a table."""
    if reward_kind not in REWARDS:
        raise ValueError(f"unknown reward {reward_kind!r}; valid: {', '.join(REWARDS)}")
    if len(frames) != len(arms):
        raise ValueError(f"{len(frames)} window frames for {len(arms)} arms")
    n_w = min(len(f) for f in frames)
    frames = [f.iloc[:n_w] for f in frames]

    def grid(col: str) -> np.ndarray:
        return np.vstack([f[col].to_numpy(dtype=float) for f in frames])

    raw = grid("reward" if reward_kind == "reward" else "goodput")
    if not np.isfinite(raw).all():
        raise ValueError("goodput reward needs an SLO (slo_ms)")
    base = frames[0]
    offered = base["offered"].to_numpy(dtype=float)
    starts = workload.phase_starts()
    mid = (np.arange(n_w) + 0.5) * window_s
    phase = np.clip(np.searchsorted(np.asarray(starts), mid, side="right") - 1, 0, None)
    return RewardTable(
        workload=workload.name, arms=arms, window_s=window_s, reward_kind=reward_kind,
        reward=raw, norm=normalise(raw, offered[None, :], window_s),
        throughput=grid("throughput"), p95=grid("p95_s"), p99=grid("p99_s"), cpu=grid("cpu"),
        memory=np.asarray(memory if memory is not None else np.zeros(len(arms)), dtype=float),
        offered=offered, mix=base[["fast", "medium", "slow"]].to_numpy(dtype=float),
        input_scale=base["input_scale"].to_numpy(dtype=float),
        phase=phase.astype(np.int64), phase_starts=tuple(float(s) for s in starts),
        meta=dict(meta or {}),
    )


# -- building tables (parallel, cached) ----------------------------------------------------------


@dataclass(frozen=True)
class ArmTask:
    """One arm over one workload, as plain data for an executor."""

    key: str  # the workload's table key
    arm: int
    workload: Mapping[str, Any]
    config: Mapping[str, Any]
    profile: Mapping[str, Any]
    seed: int
    window_s: float
    slo_ms: float | Mapping[str, float] | None
    predictor: str = "mean"


def run_arm(task: ArmTask) -> dict[str, Any]:
    """Simulate one arm over the whole workload and cut its records into windows."""
    spec = WorkloadSpec.from_dict(task.workload)
    profile = Profile.from_dict(task.profile)
    config = ServerConfig.from_dict(dict(task.config))
    res = simulate(config, spec, profile, seed=task.seed, predictor=task.predictor)
    frame = cut_windows(
        res.records, spec.total_duration, task.window_s, profile.machine.cores,
        slo_ms=task.slo_ms,
        classes={m: model_class(m, profile) for m in spec.models},
    )
    mem_total = profile.machine.memory_bytes / 2**20 if profile.machine.memory_bytes else 0.0
    memory = float(res.summary.get("memory_mb", 0.0)) / mem_total if mem_total else 0.0
    return {"frame": frame, "memory": memory, "sim_cpu_s": float(res.summary.get("cpu_s", 0.0))}


def table_key(
    spec: WorkloadSpec, arms: ArmSet, profile_digest: str, window_s: float, reward_kind: str,
    slo_ms: Any, predictor: str = "mean",
) -> str:
    """A file-safe key naming a reward table by everything it depends on."""
    ident = {"workload": spec.to_dict(), "arms": arms.ids, "profile": profile_digest,
             "window_s": window_s, "reward": reward_kind, "slo_ms": slo_ms,
             "predictor": predictor}
    digest = hashlib.sha1(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in spec.name)
    return f"{safe}-{digest[:10]}"


def build_tables(
    workloads: Sequence[WorkloadSpec],
    arms: ArmSet,
    profile: Profile,
    executor: Any,
    cache_dir: Path | None = None,
    window_s: float = 1.0,
    reward_kind: str = "reward",
    slo_ms: float | Mapping[str, float] | None = None,
    predictor: str = "mean",
    progress: bool = True,
    on_table: Callable[[RewardTable], None] | None = None,
) -> list[RewardTable]:
    """The reward table of every workload (in order), simulating ``arms × workloads`` on
    ``executor`` (one task per arm and workload).  Tables found in ``cache_dir`` (Parquet,
    keyed by :func:`table_key`) are loaded, not recomputed; each new table is written there as
    soon as its last arm finishes, so an interrupted build resumes."""
    if reward_kind not in REWARDS:
        raise ValueError(f"unknown reward {reward_kind!r}; valid: {', '.join(REWARDS)}")
    if reward_kind == "goodput" and slo_ms is None:
        models = sorted({m for w in workloads for m in w.models})
        slo_ms = default_slo(models, profile)
    digest = profile.digest
    keys = [table_key(w, arms, digest, window_s, reward_kind, slo_ms, predictor)
            for w in workloads]
    if len(set(keys)) != len(keys):
        raise ValueError("two workloads give the same reward table (duplicate workloads)")
    tables: dict[str, RewardTable] = {}
    if cache_dir is not None:
        for k in keys:
            p = Path(cache_dir) / f"{k}.parquet"
            if p.exists() and p.with_suffix(".json").exists():
                tables[k] = RewardTable.load(p)
    prof = profile.to_dict()
    tasks = [
        ArmTask(key=k, arm=a.index, workload=w.to_dict(), config=a.config.to_dict(),
                profile=prof, seed=w.seed, window_s=window_s, slo_ms=slo_ms,
                predictor=predictor)
        for k, w in zip(keys, workloads, strict=True) if k not in tables
        for a in arms
    ]
    if tables:
        log.info("reward tables: %d of %d cached", len(tables), len(keys))
    by_key = dict(zip(keys, workloads, strict=True))
    partial: dict[str, dict[int, dict[str, Any]]] = {}
    bar = None
    if progress and tasks:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), unit="sim", desc="reward tables", dynamic_ncols=True)
    try:
        for task, result in executor.map_unordered(run_arm, tasks):
            if isinstance(result, BaseException):
                raise RuntimeError(
                    f"simulating {arms[task.arm].label} on {by_key[task.key].name} failed: "
                    f"{type(result).__name__}: {result}"
                ) from result
            got = partial.setdefault(task.key, {})
            got[task.arm] = result
            if bar is not None:
                bar.update(1)
            if len(got) == len(arms):
                spec = by_key[task.key]
                table = assemble(
                    spec, arms, [got[i]["frame"] for i in range(len(arms))], window_s,
                    reward_kind, memory=[got[i]["memory"] for i in range(len(arms))],
                    meta={"key": task.key, "profile": digest, "seed": spec.seed,
                          "workload_spec": spec.to_dict(), "slo_ms": slo_ms,
                          "predictor": predictor,
                          "sim_cpu_s": sum(got[i]["sim_cpu_s"] for i in got)},
                )
                if cache_dir is not None:
                    table.save(Path(cache_dir) / f"{task.key}.parquet")
                tables[task.key] = table
                del partial[task.key]
                if on_table is not None:
                    on_table(table)
    finally:
        if bar is not None:
            bar.close()
    return [tables[k] for k in keys]
