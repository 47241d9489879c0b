"""Sweeps: a grid of server configurations x workloads (x load scales x seeds), resumable.

A sweep is a list of :class:`SweepPoint` — plain data, so any executor can ship them to a worker
(a local process or a Ray task).  :func:`simulate_point` simulates one point and returns a flat row
(and optionally its records); the driver alone writes files: each finished point as
``points/<point-id>.json`` (atomically), so a killed sweep resumes where it stopped — finished
points are skipped — and, at the end, every row of the sweep as ``sweep.parquet``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import pandas as pd

from servelab.core.config import ServerConfig
from servelab.core.profile import Profile
from servelab.core.workload import WorkloadSpec
from servelab.results import write_json, write_parquet
from servelab.sim.executors import Executor
from servelab.sim.run import simulate

log = logging.getLogger(__name__)

_DEFAULTS = ServerConfig()


# -- the grid -----------------------------------------------------------------------------------


def parse_grid(specs: Sequence[str]) -> dict[str, list[Any]]:
    """Parse ``KEY=V1,V2,...`` items (keys are :class:`ServerConfig` fields, ``-`` or ``_``)
    into typed value lists.  Tuple fields (``models``) join their elements with ``+``."""
    hints = typing.get_type_hints(ServerConfig)
    names = [f.name for f in fields(ServerConfig)]
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not values.strip():
            raise ValueError(f"grid item {spec!r}: expected KEY=V1,V2,...")
        if key not in names:
            raise ValueError(f"grid key {key!r} is not a server config field; valid: {', '.join(names)}")
        tp = hints[key]
        out: list[Any] = []
        for raw in values.split(","):
            raw = raw.strip()
            try:
                if typing.get_origin(tp) is tuple:
                    out.append(tuple(x for x in raw.split("+") if x))
                elif tp is int:
                    out.append(int(raw))
                elif tp is float:
                    out.append(float(raw))
                else:
                    out.append(raw)
            except ValueError:
                raise ValueError(f"grid {key}: {raw!r} is not a valid {tp.__name__}") from None
        grid[key] = out
    return grid


def canonical(config: ServerConfig) -> ServerConfig:
    """The same server with the fields that cannot matter reset to their defaults, so that a
    grid does not simulate one server twice (offload only matters under async, the model lock
    only where inference runs in the server's threads, the batch timeout only with batching)."""
    changes: dict[str, Any] = {}
    if config.concurrency != "async":
        changes["offload"] = _DEFAULTS.offload
    if not (config.concurrency == "threads"
            or (config.concurrency == "async" and config.offload == "thread")):
        changes["model_lock"] = _DEFAULTS.model_lock
    if config.max_batch == 1:
        changes["batch_timeout_ms"] = 0.0
    return replace(config, **changes)


def expand_configs(base: ServerConfig, grid: Mapping[str, Sequence[Any]]) -> list[ServerConfig]:
    """Every combination of the grid over ``base``, canonical and without duplicates."""
    keys = list(grid)
    seen: dict[str, ServerConfig] = {}
    for combo in itertools.product(*(grid[k] for k in keys)):
        cfg = canonical(replace(base, **dict(zip(keys, combo, strict=True))))
        seen.setdefault(cfg.config_id, cfg)
    return list(seen.values())


# -- points -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepPoint:
    """One simulation of a sweep, as plain data."""

    workload_name: str
    workload: Mapping[str, Any]
    config: Mapping[str, Any]
    profile: Mapping[str, Any]
    scale: float = 1.0
    seed: int = 0
    predictor: str = "mean"
    slo_ms: float | Mapping[str, float] | None = None
    save_records: bool = False
    profile_digest: str = field(default="", compare=False)

    @property
    def id(self) -> str:
        ident = {
            "workload": self.workload, "config": self.config, "profile": self.profile_digest,
            "scale": self.scale, "seed": self.seed, "predictor": self.predictor,
            "slo_ms": self.slo_ms,
        }
        digest = hashlib.sha1(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()
        cfg = ServerConfig.from_dict(dict(self.config))
        return f"{self.workload_name}-x{self.scale:g}-s{self.seed}-{cfg.config_id}-{digest[:8]}"


def make_points(
    workloads: Mapping[str, WorkloadSpec],
    configs: Sequence[ServerConfig],
    profile: Profile,
    scales: Sequence[float] = (1.0,),
    seed_offsets: Sequence[int] = (0,),
    predictor: str = "mean",
    slo_ms: float | Mapping[str, float] | None = None,
    save_records: bool = False,
) -> list[SweepPoint]:
    """Every workload x scale x seed x config; seeds are the workload's own seed plus each of
    ``seed_offsets`` (offset 0 reproduces ``servelab simulate``'s default run)."""
    prof = profile.to_dict()
    digest = profile.digest
    return [
        SweepPoint(
            workload_name=name, workload=spec.to_dict(), config=cfg.to_dict(), profile=prof,
            scale=float(scale), seed=spec.seed + int(offset), predictor=predictor, slo_ms=slo_ms,
            save_records=save_records, profile_digest=digest,
        )
        for name, spec in workloads.items()
        for scale in scales
        for offset in seed_offsets
        for cfg in configs
    ]


def simulate_point(point: SweepPoint) -> dict[str, Any]:
    """Simulate one point; returns ``{"row": flat summary, "records": DataFrame | None}``."""
    spec = WorkloadSpec.from_dict(point.workload)
    if point.scale != 1.0:
        spec = spec.scaled(point.scale)
    config = ServerConfig.from_dict(dict(point.config))
    res = simulate(
        config, spec, Profile.from_dict(point.profile), seed=point.seed,
        predictor=point.predictor, slo_ms=point.slo_ms,
    )
    row = {
        "point_id": point.id, "workload": point.workload_name, "scale": point.scale,
        "seed": point.seed, "predictor": point.predictor, "profile": point.profile_digest,
        **flatten_config(config), **flatten_summary(res.summary),
    }
    return {"row": row, "records": res.records if point.save_records else None}


def flatten_config(config: ServerConfig) -> dict[str, Any]:
    d = config.to_dict()
    d["models"] = "+".join(config.models)
    return {"config_id": config.config_id, **d}


def flatten_summary(s: Mapping[str, Any]) -> dict[str, Any]:
    """One flat row of a run's summary (what the sweep table and the oracle read)."""
    lat, wait = s["latency_s"], s["wait_s"]
    row: dict[str, Any] = {
        "requests": s["requests"], "offered_rate": s["offered_rate"],
        "throughput": s["throughput"],
        **{f"n_{k}": v for k, v in s["status"].items()},
        "latency_mean_s": lat["mean"], "latency_p50_s": lat["p50"],
        "latency_p90_s": lat["p90"], "latency_p99_s": lat["p99"],
        "wait_mean_s": wait["mean"], "wait_p99_s": wait["p99"],
        "mean_batch": s["mean_batch"], "reward": s["reward"],
        "goodput": s.get("goodput", math.nan),
        "slo_attainment": s.get("slo_attainment", math.nan),
        "slo_ms": json.dumps(s.get("slo_ms")),
        "cpu_utilization": s.get("cpu_utilization", math.nan),
        "memory_mb": s.get("memory_mb", math.nan),
        "little_rel_err": s.get("little", {}).get("rel_err", math.nan),
        "sim_cpu_s": s.get("cpu_s", math.nan),
    }
    for m, pm in s["per_model"].items():
        row[f"{m}.throughput"] = pm["throughput"]
        row[f"{m}.p50_s"] = pm["p50"]
        row[f"{m}.p99_s"] = pm["p99"]
    return row


# -- running ------------------------------------------------------------------------------------


@dataclass
class SweepOutcome:
    table: pd.DataFrame
    ran: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def finished_ids(out: Path) -> set[str]:
    d = out / "points"
    return {p.stem for p in d.glob("*.json")} if d.is_dir() else set()


def run_sweep(
    points: Sequence[SweepPoint],
    out: Path,
    executor: Executor,
    resume: bool = True,
    progress: bool = True,
) -> SweepOutcome:
    """Run every point not already finished under ``out`` and write ``sweep.parquet``."""
    out = Path(out)
    (out / "points").mkdir(parents=True, exist_ok=True)
    ids = [p.id for p in points]
    if len(set(ids)) != len(ids):
        raise ValueError("the sweep has duplicate points")
    done = finished_ids(out) if resume else set()
    todo = [p for p in points if p.id not in done]
    outcome = SweepOutcome(table=pd.DataFrame(), skipped=len(points) - len(todo))
    if outcome.skipped:
        log.info("resuming: %d of %d points already finished", outcome.skipped, len(points))
    bar = _progress(len(points), outcome.skipped, progress)
    try:
        for point, result in executor.map_unordered(simulate_point, todo):
            if isinstance(result, BaseException):
                outcome.failed.append((point.id, f"{type(result).__name__}: {result}"))
                log.error("point %s failed: %s", point.id, result)
            else:
                if result.get("records") is not None:
                    write_parquet(out / "records" / f"{point.id}.parquet", result["records"])
                write_json(out / "points" / f"{point.id}.json", result["row"])
                outcome.ran += 1
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    outcome.table = collect(out, ids)
    write_parquet(out / "sweep.parquet", outcome.table)
    return outcome


def collect(out: Path, ids: Iterable[str]) -> pd.DataFrame:
    """The finished rows among ``ids``, in sweep order."""
    rows = []
    for pid in ids:
        path = Path(out) / "points" / f"{pid}.json"
        if path.exists():
            rows.append(json.loads(path.read_text()))
    return pd.DataFrame(rows)


def _progress(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="point", desc="sweep", dynamic_ncols=True)


@dataclass
class Sweep:
    """A finished :func:`sweep`: the outcome of its points and the oracle table (``None``
    when no point finished)."""

    outcome: SweepOutcome
    points: int
    out: Path
    oracle: pd.DataFrame | None = None


def sweep(
    workloads: Mapping[str, WorkloadSpec], configs: Sequence[ServerConfig], profile: Profile,
    out: Path | None = None, *, scales: Sequence[float] = (1.0,), seeds: int = 1, predictor: str = "mean",
    slo_ms: float | dict[str, float] | None = None, objective: str = "reward",
    records: bool = False, executor: str = "local", jobs: int | None = None,
    address: str | None = None, resume: bool = True, progress: bool = True,
    grid: Sequence[str] = (), meta: Mapping[str, Any] | None = None,
    say: Callable[[str], None] = print,
) -> Sweep:
    """``servelab sweep``: every configuration x workload x scale x seed simulated into
    ``out`` (resumable; default a fresh ``results/sweep-*``), the manifest ``sweep.json`` (with ``meta``, the run metadata) and the
    oracle table (``oracle.parquet`` / ``oracle.json``)."""
    from servelab.results import new_run_dir
    from servelab.sim.executors import make_executor
    from servelab.sim.executors.local import default_jobs
    from servelab.sim.oracle import oracle_table

    if objective == "goodput" and slo_ms is None:
        raise ValueError("--objective goodput needs --slo-ms")
    if seeds < 1:
        raise ValueError("--seeds must be >= 1")
    points = make_points(
        workloads, configs, profile, scales=scales, seed_offsets=range(seeds),
        predictor=predictor, slo_ms=slo_ms, save_records=records,
    )
    out = out if out is not None else new_run_dir("sweep")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "sweep.json", {
        "workloads": {n: s.to_dict() for n, s in workloads.items()},
        "grid": list(grid), "configs": [c.to_dict() for c in configs],
        "scales": list(scales), "seeds": seeds, "predictor": predictor,
        "slo_ms": slo_ms, "objective": objective, "profile": profile.digest,
        "profile_source": profile.machine.source, "points": len(points), **(meta or {}),
    })
    say(f"sweep: {len(workloads)} workload(s) x {len(configs)} config(s) x {len(scales)} "
        f"scale(s) x {seeds} seed(s) = {len(points)} points -> {out}")
    kwargs: dict[str, object] = {"jobs": jobs}
    if executor == "ray":
        kwargs["address"] = address
    elif jobs is None:
        kwargs["jobs"] = min(len(points) or 1, default_jobs())
    with make_executor(executor, **kwargs) as ex:
        outcome = run_sweep(points, out, ex, resume=resume, progress=progress)
    result = Sweep(outcome, len(points), out)
    if not outcome.table.empty:
        result.oracle = oracle_table(outcome.table, objective)
        write_parquet(out / "oracle.parquet", result.oracle)
        write_json(out / "oracle.json", {"objective": objective, "slo_ms": slo_ms,
                                         "rows": result.oracle.to_dict(orient="records")})
    return result
