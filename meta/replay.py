"""Replay a policy over a reward table, window by window, with switching costs.

Each window: the policy picks an arm from the last window's features (``select``), the window
earns what the *serving* arm earned in it (the table's counterfactual reward), and the policy
learns it (``update(serving arm, normalised reward, context)``).

**Switching** (as the live gateway, ``gateway/backends.py``, does it).  Arms that differ
only in the scheduler, or (thread pools) in the pool size, run in one server process
(``ServerConfig.process_key``): the change is applied in place (``POST /servelab/config``), at
no cost.  Anything else — another concurrency model, a process pool's size, batching — needs
another backend process.  The
gateway keeps the last ``max_warm`` backends warm (least recently used retired beyond that):
moving to one still warm costs nothing either (new requests simply go to it).  Otherwise the
new backend is started while the old one keeps serving: for the new setup's start-up time
(:class:`SwitchCosts`) the old arm serves and earns its reward, less a penalty for the CPU the
starting backend takes from the shared cores.  A switch under way is committed: the policy is
not asked again until it completes (it is still told each window's reward, credited to the arm
that served it).

The first arm is free (the gateway starts with it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from servelab.core.bandits.base import Context
from servelab.meta.arms import Arm, ArmSet
from servelab.meta.windows import RewardTable, normalise

DEFAULT_START_S: dict[str, float] = {
    "threads": 5.7,
    "processes": 13.7,
    "async-thread": 16.5,
    "async-process": 21.6,
    "async-inline": 16.5,
}
"""Seconds from launching a backend (``servelab serve``, the three zoo models at full size, 2
workers) to the first answer of each model, per setup: ``python -m
servelab.calibrate.benches.switch`` on the 2-core development machine, one warm-up launch and
one timed launch each, while other jobs kept it busy (load average about 4) — so these are
likely on the slow side (not re-measured idle).  A profile from a full calibration carries its
own (``machine.extra["switch_start_s"]``), which take precedence."""

DEFAULT_PENALTY = 0.3
"""Share of the reward lost while a new backend starts: the start-up (imports, model builds,
worker spawns) took 23–52% of the machine in the same measurement (CPU seconds over start
seconds × 2 cores; mean 35%), rounded down because a server with spare cores loses less."""


@dataclass(frozen=True)
class SwitchCosts:
    """What moving between arms costs (see the module docstring)."""

    start_s: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_START_S))
    penalty: float = DEFAULT_PENALTY
    source: str = "defaults measured by calibrate/benches/switch.py (see meta/replay.py)"
    max_warm: int = 2
    """Backends kept warm, the serving one included (the gateway's ``--max-warm``); 1 = every
    switch of process starts a new one."""

    def __post_init__(self) -> None:
        if not 0 <= self.penalty <= 1:
            raise ValueError(f"switch penalty must be in [0, 1], got {self.penalty}")
        if any(not (v >= 0) for v in self.start_s.values()):
            raise ValueError("switch start times must be >= 0")
        if self.max_warm < 1:
            raise ValueError(f"max_warm must be >= 1, got {self.max_warm}")

    @classmethod
    def free(cls) -> SwitchCosts:
        """No switching cost at all (every change applied instantly)."""
        return cls(start_s={k: 0.0 for k in DEFAULT_START_S}, penalty=0.0, source="free",
                   max_warm=1)

    @classmethod
    def from_profile(cls, profile: Any) -> SwitchCosts:
        """The profile's measured start-up times where it has them (a full calibration's
        ``machine.extra["switch_start_s"]``, per setup), the defaults elsewhere."""
        start = dict(DEFAULT_START_S)
        extra = getattr(getattr(profile, "machine", None), "extra", None) or {}
        measured = {str(k): float(v) for k, v in dict(extra.get("switch_start_s") or {}).items()
                    if isinstance(v, int | float) and math.isfinite(v) and v >= 0}
        start.update(measured)
        if "async-thread" in measured:
            start.setdefault("async-inline", measured["async-thread"])
        if measured:
            src = (f"profile {getattr(profile, 'digest', '?')} "
                   f"(calibrate switch: {', '.join(sorted(measured))})")
        else:
            src = cls().source
        return cls(start_s=start, penalty=DEFAULT_PENALTY, source=src)

    def in_place(self, a: Arm, b: Arm) -> bool:
        """Whether ``a`` → ``b`` is applied in place: the same server process."""
        return backend_key(a) == backend_key(b)

    def cost_s(self, a: Arm, b: Arm, warm: Sequence[str] = ()) -> float:
        """Seconds the old arm keeps serving before ``b`` takes over (0 in place, or when
        ``b``'s backend is among the ``warm`` ones)."""
        if a.index == b.index or self.in_place(a, b) or backend_key(b) in warm:
            return 0.0
        return float(self.start_s.get(b.setup, max(self.start_s.values(), default=0.0)))

    def matrix(self, arms: ArmSet) -> list[list[float]]:
        """``cost_s`` between every pair of arms: how long each switch takes."""
        return [[self.cost_s(a, b) for b in arms] for a in arms]

    def lost_matrix(self, arms: ArmSet) -> list[list[float]]:
        """What each switch costs in seconds of lost service — what a switch-aware policy
        weighs (``core.bandits.switching``, which counts a switch's seconds as earning nothing).
        Here the old backend keeps serving while the new one starts, less the start-up's
        ``penalty``: over a horizon ``H`` a switch of ``c`` seconds gains
        ``(H − c)(v_to − v_from) − c · penalty · v_from``, which for near-equal arms (the
        delicate decisions: a large gain pays for any switch) is ``H (v_to − v_from) −
        c · penalty · v_to`` — the wrapper's test with ``c · penalty`` seconds."""
        return [[c * self.penalty for c in row] for row in self.matrix(arms)]

    def to_dict(self) -> dict[str, Any]:
        return {"start_s": dict(self.start_s), "penalty": self.penalty,
                "max_warm": self.max_warm, "source": self.source}


def backend_key(arm: Arm) -> str:
    """The server process an arm needs (``ServerConfig.process_key``, as the gateway)."""
    return arm.config.process_key


class Policy(Protocol):
    """What replay needs of a policy (``core.bandits.base.BanditPolicy`` has it)."""

    def select(self, context: Context | None = None) -> int: ...

    def update(self, arm: int, reward: float, context: Context | None = None) -> None: ...


@dataclass
class Replay:
    """One policy's run over one table: per-window columns and totals."""

    name: str
    frame: pd.DataFrame  # one row per window (see replay())
    switches: int
    backend_switches: int
    switching_s: float
    decision_s: float  # mean select + update time per window (seconds)

    @property
    def reward(self) -> np.ndarray:
        return self.frame["reward"].to_numpy()


def replay(
    policy: Policy,
    table: RewardTable,
    costs: SwitchCosts | None = None,
    name: str = "",
    learn: bool = True,
    full_information: bool = False,
    augment: int = 0,
    seed: int = 0,
) -> Replay:
    """Run ``policy`` over ``table`` (see the module docstring).  ``learn=False`` never calls
    ``update`` (a frozen prior).  Per-window columns: ``chosen`` (the policy's pick, -1 while a
    switch is committed), ``served`` (the arm credited: the one serving most of the window),
    ``old`` / ``new`` / ``old_share`` (during a switch: the arms and the share of the window
    the old one served), ``switching`` (seconds of the window spent switching), ``reward``
    (raw, what the window earned), ``norm`` (what the policy was told), ``reason`` (the
    policy's ``last_reason``, where it has one).

    ``full_information=True`` (training in simulation, where every arm's reward is known):
    after each window the policy learns every arm's normalised reward in that window's
    context, not only the serving arm's; the contexts still come from the arms it chose, plus
    (``augment`` > 0) the same window as seen under ``augment`` other arms drawn at random
    (seeded by ``seed``): a policy that seldom leaves a good arm would otherwise never see what
    an overloaded arm's p95 / p99 / CPU look like, and would have to extrapolate there."""
    costs = costs if costs is not None else SwitchCosts()
    arms: ArmSet = table.arms
    n = table.n_windows
    w_s = table.window_s
    cols: dict[str, list[Any]] = {k: [] for k in (
        "chosen", "served", "old", "new", "old_share", "switching", "reward", "norm",
        "reason")}
    cur: int | None = None
    target: int | None = None
    remaining = 0.0
    switches = backend = 0
    switching_total = 0.0
    served_prev: int | None = None
    spent = 0.0
    aug_rng = np.random.default_rng(seed)
    warm: list[str] = []  # backend keys, least recently used first (the serving one last)

    def use(arm: int) -> None:
        key = backend_key(arms[arm])
        if key in warm:
            warm.remove(key)
        warm.append(key)
        del warm[:-costs.max_warm]
    for w in range(n):
        ctx = table.context(served_prev, w - 1)
        chosen = -1
        reason = "switching" if target is not None else ""
        t0 = time.perf_counter()
        if target is None:
            chosen = int(policy.select(ctx))
            if not 0 <= chosen < table.n_arms:
                raise ValueError(f"policy {name!r} chose arm {chosen} of {table.n_arms}")
            reason = str(getattr(policy, "last_reason", "") or "")
        spent += time.perf_counter() - t0
        if cur is None:
            cur = chosen
            use(cur)
        elif target is None and chosen != cur:
            cost = costs.cost_s(arms[cur], arms[chosen], warm)
            if cost <= 0:  # in place, or to a backend still warm
                backend += int(not costs.in_place(arms[cur], arms[chosen]))
                cur = chosen
                switches += 1
                use(cur)
            else:
                target, remaining = chosen, cost
        if target is not None:
            share = min(remaining, w_s) / w_s
            old, new = cur, target
            raw = (share * table.reward[old, w] * (1.0 - costs.penalty)
                   + (1.0 - share) * table.reward[new, w])
            switching = share * w_s
            switching_total += switching
            remaining -= w_s
            served = old if share >= 0.5 else new
            if remaining <= 1e-12:
                cur, target, remaining = new, None, 0.0
                switches += 1
                backend += 1
                use(cur)
        else:
            share, old, new, switching = 1.0, cur, cur, 0.0
            raw = float(table.reward[cur, w])
            served = cur
        norm = float(normalise(np.array([raw]), table.offered[w:w + 1], w_s)[0])
        if learn and full_information:
            others = [table.context(int(o), w - 1)
                      for o in aug_rng.integers(table.n_arms, size=augment)] if w > 0 else []
            for c in [ctx, *others]:
                for a in range(table.n_arms):
                    policy.update(a, float(table.norm[a, w]), c)
        elif learn:
            t0 = time.perf_counter()
            policy.update(int(served), norm, ctx)
            spent += time.perf_counter() - t0
        served_prev = served
        for k, v in (("chosen", chosen), ("served", served), ("old", old), ("new", new),
                     ("old_share", share), ("switching", switching), ("reward", raw),
                     ("norm", norm), ("reason", reason)):
            cols[k].append(v)
    frame = pd.DataFrame(cols)
    frame.insert(0, "window", np.arange(n))
    frame.insert(1, "t0", np.arange(n) * w_s)
    frame.insert(2, "phase", table.phase)
    return Replay(name=name, frame=frame, switches=switches, backend_switches=backend,
                  switching_s=switching_total, decision_s=spent / max(n, 1))


# -- scripted "policies": the baselines -----------------------------------------------------


class Scripted:
    """Plays a fixed arm sequence indexed by window (the last repeats), ignores rewards.
    (It counts windows by its ``update`` calls, which replay makes every window.)"""

    name = "scripted"

    def __init__(self, arms: Any):
        self.arms = [int(a) for a in np.atleast_1d(arms)]
        self.t = 0

    def select(self, context: Context | None = None) -> int:
        return self.arms[min(self.t, len(self.arms) - 1)]

    def update(self, arm: int, reward: float, context: Context | None = None) -> None:
        self.t += 1


class RandomArm:
    """A uniformly random arm every window (seeded)."""

    name = "random"

    def __init__(self, n_arms: int, seed: int | None = 0):
        self.n_arms = n_arms
        self.rng = np.random.default_rng(seed)

    def select(self, context: Context | None = None) -> int:
        return int(self.rng.integers(self.n_arms))

    def update(self, arm: int, reward: float, context: Context | None = None) -> None:
        pass


class RoundRobin:
    """Arm 0, 1, 2, ... in turn, one per decision."""

    name = "round-robin"

    def __init__(self, n_arms: int):
        self.n_arms = n_arms
        self.t = 0

    def select(self, context: Context | None = None) -> int:
        a = self.t % self.n_arms
        self.t += 1
        return a

    def update(self, arm: int, reward: float, context: Context | None = None) -> None:
        pass
