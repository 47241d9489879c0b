"""What ``servelab validate`` measures: the configurations, workloads, load levels and timings.

A :class:`Cell` is one server configuration (setup x pool size x scheduler); a :class:`Grid`
is the cells, the shipped workloads, the load levels (fractions of the workload's reference
capacity, the median live capacity over the grid's cells) and how long everything runs.  The
grid is plain data with a JSON form, saved in the run folder so that ``--resume`` repeats
exactly the same measurements.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from servelab.core.config import ServerConfig
from servelab.core.workload import ArrivalSpec, WorkloadSpec

SETUPS: dict[str, dict[str, str]] = {
    "threads": {"concurrency": "threads"},
    "processes": {"concurrency": "processes"},
    "async-inline": {"concurrency": "async", "offload": "inline"},
    "async-thread": {"concurrency": "async", "offload": "thread"},
    "async-process": {"concurrency": "async", "offload": "process"},
}
"""The five server setups: the thread and process servers (waitress front end) and the asyncio
server (uvicorn) with inference inline on the loop, in an executor thread or in a process."""

WORKERS = (1, 2, 4)
SCHEDULERS = ("fifo", "sjf", "mlfq")
WORKLOADS = ("fast-only", "mixed", "slow-only", "bursty")
FULL_LOADS = (0.5, 0.8, 0.95, 1.3)
QUICK_LOADS = (0.5, 0.8)
QUEUE_CAPACITY = 256
"""The servers' default admission queue (beyond it, 503)."""
TARGET_LOAD = 0.8
"""The per-point error targets apply to points at or below this load (of their own capacity)."""

DEFAULT_SLO_MS: dict[str, float] = {
    "mobilenet_v2": 100.0, "lstm_forecaster": 100.0, "distilbert": 2000.0, "*": 1000.0,
}
"""Per-model latency objectives of the SLO goodput (fixed, so runs stay comparable)."""


@dataclass(frozen=True, order=True)
class Cell:
    """One server configuration of the grid."""

    setup: str
    workers: int
    scheduler: str

    def __post_init__(self) -> None:
        if self.setup not in SETUPS:
            raise ValueError(f"unknown setup {self.setup!r}; valid: {', '.join(SETUPS)}")

    def config(self, models: Sequence[str]) -> ServerConfig:
        """The server configuration: no model locks (the default), the default queue."""
        return ServerConfig(
            **SETUPS[self.setup], workers=self.workers, scheduler=self.scheduler,
            model_lock="none", queue_capacity=QUEUE_CAPACITY, models=tuple(models),
        )

    @property
    def key(self) -> str:
        return f"{self.setup}-w{self.workers}-{self.scheduler}"

    @property
    def label(self) -> str:
        return f"{self.setup} w{self.workers} {self.scheduler}"

    @property
    def capacity_key(self) -> str:
        """Capacity is a property of the setup and pool size (the rate of work they sustain);
        the scheduler only reorders that work."""
        return f"{self.setup}-w{self.workers}"

    @classmethod
    def parse(cls, key: str) -> Cell:
        setup, w, scheduler = key.rsplit("-", 2)
        return cls(setup, int(w.removeprefix("w")), scheduler)


def product_cells(setups: Iterable[str], workers: Iterable[int],
                  schedulers: Iterable[str]) -> tuple[Cell, ...]:
    """Every combination."""
    return tuple(Cell(s, w, p) for s in setups for w in workers for p in schedulers)


def curated_cells(setups: Sequence[str], workers: Sequence[int],
                  schedulers: Sequence[str]) -> tuple[Cell, ...]:
    """Every setup at every pool size under the first scheduler, and every setup under each
    other scheduler at one pool size (2 if listed): the pool-size and scheduler effects without
    the full product."""
    ref = 2 if 2 in workers else workers[0]
    cells = [Cell(s, w, schedulers[0]) for s in setups for w in workers]
    cells += [Cell(s, ref, p) for s in setups for p in schedulers[1:]]
    return tuple(dict.fromkeys(cells))


def ladder_cells(cells: Iterable[Cell]) -> dict[str, Cell]:
    """Per capacity key, the configuration whose server runs the capacity ladder: the FIFO one
    if the grid has it.  (Under SJF or MLFQ short requests keep completing past capacity while
    long ones starve, so a completion-count ladder there overstates the capacity.)"""
    out: dict[str, Cell] = {}
    for c in cells:
        if c.capacity_key not in out or (c.scheduler == "fifo"
                                          and out[c.capacity_key].scheduler != "fifo"):
            out[c.capacity_key] = c
    return out


def quick_cells(setups: Sequence[str]) -> tuple[Cell, ...]:
    """Every setup at pool size 2 under FIFO, plus SJF and pool sizes 1 and 4 on the first."""
    cells = [Cell(s, 2, "fifo") for s in setups]
    cells += [Cell(setups[0], 2, "sjf"), Cell(setups[0], 1, "fifo"), Cell(setups[0], 4, "fifo")]
    return tuple(dict.fromkeys(cells))


@dataclass(frozen=True)
class Grid:
    """The measurements of one validation run (and how long each takes)."""

    cells: tuple[Cell, ...]
    workloads: tuple[str, ...] = WORKLOADS
    loads: tuple[float, ...] = FULL_LOADS
    duration: float = 20.0
    """Measured seconds per point, after the warm-up (so is ``ladder_step_s`` per step)."""
    warmup: float = 3.0
    ladder_step_s: float = 4.0
    ladder_warmup_s: float = 1.0
    ladder_steps: int = 6
    server_warmup_s: float = 2.0
    repeats: int = 2
    """How often the repeated points run in all (1 = no repeats, no noise estimate)."""
    repeat_cells: int = 2
    """Configurations per workload whose points at loads <= 0.8 are repeated."""
    repeat_loads: str = "all"
    """``all``: repeat at every load <= 0.8; ``top``: only at the highest of them."""
    sim_seeds: int = 3
    seed: int = 0
    variant: str = "full"
    slo_ms: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_SLO_MS))
    timeout_s: float = 30.0
    kernel: str = "torch"
    """The ffi kernel every configuration serves on (``servelab serve --kernel``)."""
    rescale: bool = False
    """Simulate each point at the machine's speed when it ran (a speed probe before it, over
    the profile's own reference probe: :mod:`servelab.core.speed`).  Off by default: measured
    here, a one-second probe does not represent the next ten seconds (the machine's speed moves
    within seconds), and rescaling by it doubled the median p50 error."""

    def __post_init__(self) -> None:
        if not self.cells or not self.workloads or not self.loads:
            raise ValueError("the grid needs at least one configuration, workload and load")
        if any(not (x > 0) for x in self.loads):
            raise ValueError(f"loads must be > 0, got {self.loads}")
        if self.repeats < 1 or self.sim_seeds < 1 or self.ladder_steps < 1:
            raise ValueError("repeats, sim_seeds and ladder_steps must be >= 1")
        if self.repeat_loads not in ("all", "top"):
            raise ValueError("repeat_loads must be 'all' or 'top'")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cells"] = [c.key for c in self.cells]
        d["slo_ms"] = dict(self.slo_ms)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Grid:
        names = {f.name for f in fields(cls)}
        d = {k: v for k, v in data.items() if k in names}
        d["cells"] = tuple(Cell.parse(k) for k in d["cells"])
        for k in ("workloads", "loads"):
            d[k] = tuple(d[k])
        return cls(**d)

    @property
    def repeat_levels(self) -> tuple[float, ...]:
        low = [x for x in self.loads if x <= TARGET_LOAD + 1e-9]
        if self.repeats < 2 or not low:
            return ()
        return tuple(low) if self.repeat_loads == "all" else (max(low),)


def quick_grid(setups: Sequence[str] = tuple(SETUPS), **kw: Any) -> Grid:
    """``--quick``: every setup, a subset of the rest, short points (<= 15 minutes here)."""
    base: dict[str, Any] = dict(
        cells=quick_cells(setups), workloads=("fast-only", "mixed"), loads=QUICK_LOADS,
        duration=8.0, warmup=2.0, ladder_step_s=3.0, ladder_warmup_s=1.0, ladder_steps=4,
        server_warmup_s=1.5, repeats=2, repeat_cells=1, repeat_loads="all", sim_seeds=3,
    )
    base.update(kw)
    return Grid(**base)


def full_grid(setups: Sequence[str] = tuple(SETUPS), workers: Sequence[int] = WORKERS,
              schedulers: Sequence[str] = SCHEDULERS, product: bool = False, **kw: Any) -> Grid:
    cells = (product_cells if product else curated_cells)(setups, workers, schedulers)
    return Grid(cells=cells, **kw)


# -- workloads at a rate ---------------------------------------------------------------------


def models_of(workloads: Iterable[WorkloadSpec]) -> tuple[str, ...]:
    """Every model any of the workloads uses, in first-seen order (what each server loads)."""
    names: dict[str, None] = {}
    for spec in workloads:
        names.update(dict.fromkeys(spec.models))
    return tuple(names)


def at_rate(spec: WorkloadSpec, rate: float, duration: float, warmup: float, seed: int,
            poisson: bool = False) -> WorkloadSpec:
    """``spec``'s mix, sizes, priorities and arrival process at mean ``rate``: ``warmup``
    seconds, then ``duration`` measured seconds (``poisson``: Poisson arrivals at that rate
    instead of the workload's process — the capacity ladder's short steps would otherwise
    measure the bursts, not the server)."""
    if poisson:
        spec = replace(spec, arrival=ArrivalSpec(kind="poisson", rate=spec.mean_rate()),
                       phases=())
    scaled = spec.scaled(rate / spec.mean_rate())
    return replace(scaled, duration=duration + warmup, warmup_s=warmup, seed=seed, phases=())


def point_seed(grid: Grid, workload: str, load: float) -> int:
    """The arrival seed of a load level: the same for every configuration (common random
    numbers, so configurations are ranked on the same requests)."""
    return grid.seed + 1000 * (1 + zlib.crc32(workload.encode()) % 997) + round(load * 100)


def point_key(workload: str, cell: Cell, load: float, repeat: int) -> str:
    return f"{workload}|{cell.key}|{load:g}|r{repeat}"


# -- time ------------------------------------------------------------------------------------

START_S = 12.0
"""Planned seconds to stop one server and start the next (10 s measured here with tiny
models)."""
RUN_OVERHEAD_S = 1.0
"""Planned seconds per load-generator run beyond its schedule (bodies, drain, summary)."""
LADDER_STEPS = 2.7
"""Planned steps per capacity ladder (the simulated capacity is a close first guess)."""


@dataclass(frozen=True)
class Plan:
    """The work of a grid, in units that progress and ETA lines count."""

    starts: int
    ladders: int
    points: int
    grid: Grid

    @classmethod
    def of(cls, grid: Grid) -> Plan:
        n_levels = len(grid.repeat_levels)
        repeats = (grid.repeats - 1) * n_levels * min(grid.repeat_cells, len(grid.cells))
        points = len(grid.cells) * len(grid.workloads) * len(grid.loads)
        n_ladder = len(ladder_cells(grid.cells))
        # the last capacity-phase server stays up for its points: one start fewer
        return cls(starts=n_ladder + len(grid.cells) - 1, ladders=n_ladder * len(grid.workloads),
                   points=points + repeats * len(grid.workloads), grid=grid)

    @property
    def point_s(self) -> float:
        return self.grid.duration + self.grid.warmup + RUN_OVERHEAD_S

    @property
    def ladder_s(self) -> float:
        return LADDER_STEPS * (self.grid.ladder_step_s + self.grid.ladder_warmup_s
                               + RUN_OVERHEAD_S)

    @property
    def start_s(self) -> float:
        return START_S + self.grid.server_warmup_s + RUN_OVERHEAD_S

    @property
    def seconds(self) -> float:
        return self.starts * self.start_s + self.ladders * self.ladder_s + self.points * self.point_s


class Eta:
    """Remaining time: the planned seconds of the work left, at the pace seen so far."""

    def __init__(self, plan: Plan) -> None:
        self.unit = {"start": plan.start_s, "ladder": plan.ladder_s, "point": plan.point_s}
        self.left = dict.fromkeys(self.unit, 0)
        self.done_planned = 0.0
        self.t0 = time.perf_counter()

    def add(self, kind: str, n: int = 1) -> None:
        self.left[kind] += n

    def done(self, kind: str) -> None:
        self.left[kind] = max(0, self.left[kind] - 1)
        self.done_planned += self.unit[kind]

    def __str__(self) -> str:
        planned = sum(self.unit[k] * n for k, n in self.left.items())
        pace = (time.perf_counter() - self.t0) / self.done_planned if self.done_planned else 1.0
        return fmt_duration(planned * pace)


def fmt_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
