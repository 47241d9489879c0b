"""``servelab meta train``: warm-start the bandit policies in simulation.

1. **Draw training workloads** (:func:`draw_workloads`): ``n`` randomized shifting workloads,
   seeded — phase counts, lengths, offered load (as a fraction of the machine's estimated
   capacity for the phase's mix), model mixes and input-size scales drawn from
   :class:`Ranges`.  None may equal a held-out evaluation workload (every shipped
   ``shifting*`` workload): :func:`check_held_out` raises if one does.
2. **Reward tables** for all of them (``meta.windows.build_tables``: every arm simulated over
   each workload, on the sweep's executors, cached as Parquet under ``<out>/tables`` — a rerun
   with ``--resume`` skips those present).
3. **Fit each policy** over the tables in turn, one policy object carried across them:
   a contextual policy (LinUCB, or a wrapper around one) with *full information* — after each
   window it learns every arm's reward in that window's context (simulation knows them all),
   the contexts coming from the arms it chose itself, so it sees the p95/p99/CPU features a
   deployed policy would; every other policy by plain bandit replay (it learns only what it
   played), which leaves it with each arm's standing across the training mix.
4. **Write the policy file** — JSON, never pickle: per policy its ``to_dict()`` (state and
   random generator), plus the arms, window, reward, switching costs, the profile's digest, the
   training draws and the command.  ``servelab meta eval --prior`` and the live gateway load it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from servelab.core.profile import Profile
from servelab.core.workload import DEFAULT_SIZES, ArrivalSpec, Phase, SizeDist, WorkloadSpec
from servelab.meta.arms import ArmSet
from servelab.meta.policies import inner_contextual, load_policy, make_policy
from servelab.meta.replay import SwitchCosts, replay
from servelab.meta.windows import RewardTable, build_tables, nominal_size
from servelab.results import write_json

log = logging.getLogger(__name__)

POLICY_FILE_FORMAT = "servelab-meta-policy"
POLICY_FILE_VERSION = 1


@dataclass(frozen=True)
class Ranges:
    """What a training workload is drawn from (uniform unless said otherwise)."""

    phases: tuple[int, int] = (2, 4)
    phase_s: tuple[float, float] = (10.0, 30.0)
    load: tuple[float, float] = (0.1, 1.1)
    """Offered load over the phase mix's estimated capacity (log-uniform)."""
    single_model: float = 0.35
    """Chance that a phase serves one model only."""
    mix_alpha: float = 0.7
    """Dirichlet concentration of a mixed phase's model shares."""
    size_scale: tuple[float, float] = (0.5, 2.0)
    """Input sizes (DistilBERT words, LSTM look-back) times this (log-uniform)."""
    models: tuple[str, ...] = ("mobilenet_v2", "lstm_forecaster", "distilbert")
    warmup_s: float = 2.0
    overhead: float = 2.0
    """Capacity estimate: cores / (mean service time × this), the front end's share folded in."""


AUGMENT = 0
"""Full-information fits may also see each window through this many random other arms' eyes
(``meta.replay.replay``'s ``augment``).  Off: with 3 or 8 the held-out oracle shares of the
LinUCB priors moved by under 0.03 (mean over the seven workloads, both switching regimes) at
3-8x the fitting time."""

QUICK_WORKLOADS = 6
DEFAULT_WORKLOADS = 24


def capacity(profile: Profile, mix: Mapping[str, float], scale: float, overhead: float) -> float:
    """Rough requests/s the machine serves for a mix: cores over the mean CPU per request."""
    total = sum(mix.values())
    cost = 0.0
    for m, w in mix.items():
        size = nominal_size(m) * (scale if m != "mobilenet_v2" else 1.0)
        cost += w / total * profile.model(m).mean_service(size)
    return profile.machine.cores / max(cost * overhead, 1e-6)


def scaled_size(model: str, scale: float) -> SizeDist | None:
    """``model``'s default input-size distribution with sizes times ``scale`` (None: it has no
    size to scale — MobileNetV2's CIFAR images are 32x32 whatever the traffic)."""
    d = DEFAULT_SIZES.get(model)
    if d is None or d.kind == "fixed":
        return None
    if d.kind == "lognormal":
        return replace(d, median=max(d.median * scale, float(d.min)))
    if d.kind == "choice":
        return replace(d, values=tuple(int(min(max(v * scale, 8), 2000)) for v in d.values))
    return None


def _sizes(scale: float, models: Sequence[str]) -> dict[str, SizeDist]:
    scaled = {m: scaled_size(m, scale) for m in models}
    return {m: d for m, d in scaled.items() if d is not None}


def random_mix(rng: np.random.Generator, models: Sequence[str], single_model: float,
               mix_alpha: float) -> dict[str, float]:
    """One model alone (with probability ``single_model``), else a Dirichlet(``mix_alpha``)
    mix of 2..all of ``models`` (shares under 2% dropped)."""
    if rng.random() < single_model or len(models) == 1:
        return {models[int(rng.integers(len(models)))]: 1.0}
    k = int(rng.integers(2, len(models) + 1))
    chosen = rng.choice(len(models), size=k, replace=False)
    w = rng.dirichlet([mix_alpha] * k)
    mix = {models[int(i)]: round(float(x), 3) for i, x in zip(chosen, w, strict=True)
           if x >= 0.02}
    return mix or {models[int(chosen[0])]: 1.0}


def random_workload(
    rng: np.random.Generator, profile: Profile, ranges: Ranges, name: str, seed: int
) -> WorkloadSpec:
    """One randomized shifting workload (see :class:`Ranges`)."""
    models = [m for m in ranges.models if m in profile.models]
    if not models:
        raise ValueError("no training model is in the profile")
    n_phases = int(rng.integers(ranges.phases[0], ranges.phases[1] + 1))
    phases = []
    for _ in range(n_phases):
        mix = random_mix(rng, models, ranges.single_model, ranges.mix_alpha)
        scale = float(np.exp(rng.uniform(*np.log(ranges.size_scale))))
        load = float(np.exp(rng.uniform(*np.log(ranges.load))))
        rate = max(load * capacity(profile, mix, scale, ranges.overhead), 0.5)
        dur = float(np.round(rng.uniform(*ranges.phase_s)))
        phases.append(Phase(duration=dur, arrival=ArrivalSpec(kind="poisson", rate=round(rate, 2)),
                            mix=mix, sizes=_sizes(scale, list(mix))))
    first = phases[0].mix or {models[0]: 1.0}
    return WorkloadSpec(
        name=name, duration=sum(p.duration for p in phases), mix=dict(first),
        phases=tuple(phases), warmup_s=ranges.warmup_s, seed=seed,
        description="a randomized shifting training workload (servelab meta train)",
    )


def _shape(spec: WorkloadSpec) -> str:
    """A workload's traffic (phases with their rates, mixes and sizes), without its name, seed
    or description."""
    return repr([(p.duration, p.arrival, dict(p.mix or {}), dict(p.sizes or {}))
                 for p in spec.effective_phases()])


def held_out_workloads() -> list[WorkloadSpec]:
    """The evaluation workloads: every shipped ``shifting*`` workload."""
    from servelab.workloads import list_workloads, load_workload

    out = []
    for name in list_workloads():
        if name.startswith("shifting"):
            spec = load_workload(name)
            out.append(spec if spec.name != WorkloadSpec().name else replace(spec, name=name))
    return out


def check_held_out(train: Sequence[WorkloadSpec], held_out: Sequence[WorkloadSpec]) -> None:
    """Raise if a training workload has the traffic of a held-out one (same phases, rates,
    mixes and sizes, whatever its name or seed)."""
    shapes = {_shape(h): h.name for h in held_out}
    for t in train:
        hit = shapes.get(_shape(t))
        if hit is not None:
            raise ValueError(f"training workload {t.name} equals the held-out workload {hit}")
        if t.name in {h.name for h in held_out}:
            raise ValueError(f"training workload {t.name} has a held-out workload's name")


def draw_workloads(
    n: int, profile: Profile, seed: int = 0, ranges: Ranges | None = None
) -> list[WorkloadSpec]:
    """``n`` training workloads, deterministic in ``seed``."""
    ranges = ranges if ranges is not None else Ranges()
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7EA1]))
    return [random_workload(rng, profile, ranges, f"train-s{seed}-{i:03d}",
                            seed=int(rng.integers(1, 2**31 - 1))) for i in range(n)]


# -- fitting -------------------------------------------------------------------------------------


def fresh_episode(policy: Any, spec: str, **make: Any) -> Any:
    """``policy`` ready for a new run: a wrapper's own state (the arm it is on, its dwell, its
    detectors' references — where the *last* run ended) is rebuilt fresh from ``spec`` around
    the trained inner policy, which keeps everything it learned.  Other policies are returned
    as they are (all their state is what they learned)."""
    inner = getattr(policy, "inner", None)
    if inner is None:
        return policy
    fresh = make_policy(spec, policy.n_arms, policy.seed, **make)
    fresh.inner = inner
    return fresh


def fit_policy(
    spec: str, tables: Sequence[RewardTable], costs: SwitchCosts, seed: int = 0,
    window_s: float = 1.0, augment: int | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Train the policy ``spec`` over ``tables`` in order (see the module docstring); returns
    it (ready for a new run, :func:`fresh_episode`) and how it was trained."""
    if not tables:
        raise ValueError("no training tables")
    arms = tables[0].arms
    make = {"cost": costs.lost_matrix(arms), "window_s": window_s}
    policy = make_policy(spec, len(arms), seed, **make)
    full = inner_contextual(policy) is not None
    t0 = time.perf_counter()
    shares = []
    aug = AUGMENT if augment is None else augment
    for i, table in enumerate(tables):
        policy = fresh_episode(policy, spec, **make)
        rep = replay(policy, table, costs, name=spec, full_information=full,
                     augment=aug if full else 0, seed=seed + i)
        oracle = _oracle_total(table)
        shares.append(float(rep.reward.sum() / oracle) if oracle > 0 else math.nan)
    how = {"mode": "full information" if full else "bandit replay",
           "fit_s": time.perf_counter() - t0,
           "train_oracle_share_mean": float(np.nanmean(shares)) if shares else math.nan,
           "train_oracle_share_last": shares[-1] if shares else math.nan}
    return fresh_episode(policy, spec, **make), how


def _oracle_total(table: RewardTable) -> float:
    from servelab.meta.metrics import oracle_rewards

    return float(oracle_rewards(table).sum())


@dataclass
class TrainResult:
    path: Path
    policies: dict[str, dict[str, Any]]
    tables: int
    table_s: float
    fit_s: float


def train(
    profile: Profile,
    arms: ArmSet,
    policies: Sequence[str],
    executor: Any,
    out_dir: Path,
    n_workloads: int = DEFAULT_WORKLOADS,
    seed: int = 0,
    window_s: float = 1.0,
    reward_kind: str = "reward",
    slo_ms: float | Mapping[str, float] | None = None,
    costs: SwitchCosts | None = None,
    ranges: Ranges | None = None,
    policy_file: Path | None = None,
    command: str = "",
    progress: bool = True,
) -> TrainResult:
    """Draw, simulate, fit and write the policy file (``<out_dir>/policy.json`` by default)."""
    if n_workloads < 1:
        raise ValueError("train needs at least one workload")
    costs = costs if costs is not None else SwitchCosts.from_profile(profile)
    ranges = ranges if ranges is not None else Ranges()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    workloads = draw_workloads(n_workloads, profile, seed, ranges)
    held = held_out_workloads()
    check_held_out(workloads, held)
    t0 = time.perf_counter()
    tables = build_tables(workloads, arms, profile, executor, cache_dir=out_dir / "tables",
                          window_s=window_s, reward_kind=reward_kind, slo_ms=slo_ms,
                          progress=progress)
    table_s = time.perf_counter() - t0
    fitted: dict[str, dict[str, Any]] = {}
    fit_total = 0.0
    for spec in policies:
        policy, how = fit_policy(spec, tables, costs, seed, window_s)
        fit_total += how["fit_s"]
        state = policy.to_dict()
        load_policy(state)  # refuse to write a state that does not load back
        fitted[spec] = {"policy": state, "training": how}
        log.info("%s: %s, train oracle share %.3f", spec, how["mode"],
                 how["train_oracle_share_mean"])
    path = Path(policy_file) if policy_file is not None else out_dir / "policy.json"
    write_json(path, {
        "format": POLICY_FILE_FORMAT, "version": POLICY_FILE_VERSION,
        "arms": arms.to_list(), "window_s": window_s, "reward": reward_kind,
        "slo_ms": slo_ms, "switch_costs": costs.to_dict(),
        "profile": profile.digest, "profile_source": profile.machine.source,
        "command": command, "seed": seed,
        "training": {"workloads": len(workloads), "ranges": asdict(ranges),
                     "names": [w.name for w in workloads],
                     "held_out": [h.name for h in held], "table_s": table_s,
                     "fit_s": fit_total, "tables_dir": str(out_dir / "tables")},
        "policies": fitted,
    })
    return TrainResult(path=path, policies=fitted, tables=len(tables), table_s=table_s,
                       fit_s=fit_total)


def load_policy_file(path: Path, arms: ArmSet | None = None) -> dict[str, Any]:
    """Read a policy file; with ``arms``, refuse one trained on other arms."""
    import json

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"policy file not found: {path}")
    data = json.loads(path.read_text())
    if data.get("format") != POLICY_FILE_FORMAT:
        raise ValueError(f"{path}: not a servelab policy file")
    if int(data.get("version", 0)) != POLICY_FILE_VERSION:
        raise ValueError(f"{path}: policy file version {data.get('version')} is not "
                         f"{POLICY_FILE_VERSION}; re-run servelab meta train")
    # Arms are compared by their configurations, their ids recomputed: a file written before
    # config ids hashed only non-default fields (or before a later field existed) still loads.
    if arms is not None and ArmSet.from_list(data["arms"]).ids != arms.ids:
        raise ValueError(f"{path}: trained on other arms ({len(data['arms'])}) than these "
                         f"({len(arms)}); pass the same --arms")
    return dict(data)


def prior_policies(data: Mapping[str, Any]) -> dict[str, Any]:
    """The trained policy objects of a policy file, by spec."""
    return {spec: load_policy(entry["policy"]) for spec, entry in data["policies"].items()}
