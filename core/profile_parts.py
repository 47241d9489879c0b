"""The sections of a machine profile (see :mod:`servelab.core.profile`, which assembles them).

Each section is a frozen dataclass with a JSON form (``from_dict`` refuses unknown fields with
:class:`ProfileError`): where the numbers come from (:class:`MachineInfo`), the service-time
model of one model (:class:`CostCurve`, :class:`ModelProfile`), the costs the server setups
share (interference, IPC, HTTP, the event loop, memory, the GIL), and what calibration measured
on the live servers (:class:`FrontEndCost`, :class:`ClientCost`).  No torch, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Self

import numpy as np

from servelab.core.plain import from_plain, to_plain

DISTRIBUTIONS = ("deterministic", "exponential", "gamma", "lognormal")
"""Shapes of the multiplicative service-time noise (mean 1, coefficient of variation ``cv``)."""

CONCURRENCY_STACKS = ("threads", "processes", "async")


class ProfileError(ValueError):
    """A profile that cannot be read: wrong schema version, unknown field, bad value."""


class Section:
    """A profile section's JSON form, by its dataclass fields (:mod:`servelab.core.plain`):
    ``to_dict`` as dicts, lists and numbers; ``from_dict`` refusing unknown fields and
    converting each value by its annotation, errors as :class:`ProfileError` naming the
    field (``WHERE`` names the section)."""

    WHERE: ClassVar[str] = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return from_plain(cls, data, cls.WHERE, ProfileError)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = to_plain(self)
        return out


def _nonneg(where: str, **values: float) -> None:
    for name, v in values.items():
        if not (v >= 0 and math.isfinite(v)):
            raise ProfileError(f"{where}: {name} must be a finite number >= 0, got {v}")


# -- machine -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MachineInfo(Section):
    """Where a profile was measured.  Unknown keys (calibration may record more) go to
    ``extra`` so that metadata is never lost on a round trip."""

    WHERE = "machine"

    cpu_model: str = "unknown"
    cores: int = 1
    memory_bytes: int = 0
    kernel: str = ""
    python: str = ""
    torch: str | None = None
    thread_settings: Mapping[str, Any] = field(default_factory=dict)
    date: str = ""
    hostname: str = ""
    source: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.cores < 1:
            raise ProfileError(f"machine: cores must be >= 1, got {self.cores}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MachineInfo:
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in data.items() if k in known}
        extra = dict(d.pop("extra", {}) or {})
        extra.update({k: v for k, v in data.items() if k not in known})
        return cls(**d, extra=extra)


# -- service-time model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CostCurve(Section):
    """Seconds of CPU work as a function of input size.

    Without ``points`` the curve is ``fixed_s + per_unit_s * size``.  With ``points`` —
    measured ``(size, seconds)`` pairs, the natural output of a calibration — it is
    piecewise-linear through them: between ``(0, fixed_s)`` and the first point below it, and
    extrapolated with the last segment's slope above the last point.
    """

    WHERE = "cost curve"

    fixed_s: float = 0.0
    per_unit_s: float = 0.0
    points: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        _nonneg("cost curve", fixed_s=self.fixed_s, per_unit_s=self.per_unit_s)
        sizes = [p[0] for p in self.points]
        if any(s <= 0 for s in sizes) or sizes != sorted(set(sizes)):
            raise ProfileError("cost curve: point sizes must be positive and strictly increasing")
        if any(not (p[1] >= 0) for p in self.points):
            raise ProfileError("cost curve: point seconds must be >= 0")

    def evaluate(self, sizes: np.ndarray | Sequence[float] | float) -> np.ndarray:
        """Seconds at each size (vectorized); never negative."""
        x = np.asarray(sizes, dtype=float)
        if not self.points:
            return np.maximum(self.fixed_s + self.per_unit_s * x, 0.0)
        xs = np.array([0.0] + [p[0] for p in self.points])
        ys = np.array([self.fixed_s] + [p[1] for p in self.points])
        out = np.interp(x, xs, ys)
        slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
        above = x > xs[-1]
        out = np.where(above, ys[-1] + slope * (x - xs[-1]), out)
        return np.maximum(out, 0.0)

    def __call__(self, size: float) -> float:
        return float(self.evaluate(size))


@dataclass(frozen=True)
class ModelProfile(Section):
    """The service-time model of one model.

    A batch of ``b`` requests with input sizes ``s_1..s_b`` costs
    ``sum(preprocess(s_i)) + forward(max s_i) / intra_op_speedup[t-1] * b**batch_exponent
    + sum(postprocess(s_i))`` seconds of CPU, times the mean of the members' noise factors
    (each drawn once per request from ``dist`` with mean 1 and coefficient of variation ``cv``;
    ``exponential`` ignores ``cv``).  The forward pass is ``stages`` equal pieces; execution
    may pause between pieces (MLFQ preemption).  ``gil_share`` is the fraction of the CPU work
    during which the GIL is held.  Payload bytes (request in, response out) drive the IPC and
    HTTP per-byte costs; ``memory_mb`` is one loaded copy (weights + activations).
    ``cold``: ``(idle gap seconds, extra CPU seconds)`` points — what a batch costs beyond the
    back-to-back figures when its worker sat idle that long before it (caches gone cold, the
    core asleep); piecewise-linear, flat beyond the last point.
    """

    WHERE = "model"

    preprocess: CostCurve = field(default_factory=CostCurve)
    forward: CostCurve = field(default_factory=CostCurve)
    postprocess: CostCurve = field(default_factory=CostCurve)
    stages: int = 1
    batch_exponent: float = 1.0
    intra_op_speedup: tuple[float, ...] = (1.0,)
    dist: str = "lognormal"
    cv: float = 0.0
    gil_share: float = 0.0
    input_bytes_fixed: float = 0.0
    input_bytes_per_unit: float = 0.0
    output_bytes: float = 0.0
    memory_mb: float = 0.0
    cold: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        if any(g < 0 or not (x >= 0) for g, x in self.cold):
            raise ProfileError("model: cold points need gaps and extra seconds >= 0")
        if self.stages < 1:
            raise ProfileError(f"model: stages must be >= 1, got {self.stages}")
        if self.dist not in DISTRIBUTIONS:
            raise ProfileError(
                f"model: unknown dist {self.dist!r}; valid: {', '.join(DISTRIBUTIONS)}"
            )
        if not 0 <= self.gil_share <= 1:
            raise ProfileError(f"model: gil_share must be in [0, 1], got {self.gil_share}")
        if not self.intra_op_speedup or any(s <= 0 for s in self.intra_op_speedup):
            raise ProfileError("model: intra_op_speedup needs positive factors (1 thread first)")
        _nonneg(
            "model", batch_exponent=self.batch_exponent, cv=self.cv,
            input_bytes_fixed=self.input_bytes_fixed,
            input_bytes_per_unit=self.input_bytes_per_unit, output_bytes=self.output_bytes,
            memory_mb=self.memory_mb,
        )

    def cold_extra(self, gap: float) -> float:
        """Extra CPU seconds of a batch started ``gap`` seconds after its worker's last one."""
        pts = self.cold
        if not pts:
            return 0.0
        if gap >= pts[-1][0]:
            return pts[-1][1]
        return float(np.interp(gap, [g for g, _ in pts], [x for _, x in pts]))

    def speedup(self, threads: int) -> float:
        """Forward-pass speedup at ``threads`` intra-op threads (the last factor beyond the table)."""
        return self.intra_op_speedup[min(max(threads, 1), len(self.intra_op_speedup)) - 1]

    def mean_service(self, size: float, threads: int = 1) -> float:
        """Expected seconds for one request alone at batch 1."""
        return (
            self.preprocess(size) + self.forward(size) / self.speedup(threads)
            + self.postprocess(size)
        )

    def input_bytes(self, size: float) -> float:
        return self.input_bytes_fixed + self.input_bytes_per_unit * size


# -- shared costs ------------------------------------------------------------------------------


def _curve(where: str, values: Sequence[float]) -> tuple[float, ...]:
    out = tuple(float(v) for v in values)
    if not out or any(not (v > 0) for v in out):
        raise ProfileError(f"{where}: needs positive slowdown factors (k = 1 first)")
    return out


@dataclass(frozen=True)
class Interference(Section):
    """Slowdown of each active compute thread when ``k`` run at once (``k = 1, 2, ...``):
    memory bandwidth, caches, frequency (GIL contention is :class:`GilCost`'s).  Interpolated linearly; the last factor holds beyond the table.
    ``k`` counts busy compute threads, so it may exceed the cores (then the cores are also
    time-shared, which the simulator models separately)."""

    WHERE = "interference"

    threads: tuple[float, ...] = (1.0,)
    processes: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        _curve("interference.threads", self.threads)
        _curve("interference.processes", self.processes)

    def table(self, kind: str) -> tuple[float, ...]:
        if kind not in ("threads", "processes"):
            raise ValueError(f"unknown interference kind {kind!r}; valid: threads, processes")
        return self.threads if kind == "threads" else self.processes

    def slowdown(self, kind: str, k: float) -> float:
        """The slowdown factor at ``k`` (possibly fractional) active threads; 1 for k <= 1."""
        table = self.table(kind)
        if k <= 1:
            return table[0]
        if k >= len(table):
            return table[-1]
        i = int(k)
        return table[i - 1] + (table[i] - table[i - 1]) * (k - i)


@dataclass(frozen=True)
class IpcCost(Section):
    """Handing one request to a worker process and its response back (pickle + pipe)."""

    WHERE = "ipc"

    fixed_s: float = 0.0
    per_byte_s: float = 0.0

    def __post_init__(self) -> None:
        _nonneg("ipc", fixed_s=self.fixed_s, per_byte_s=self.per_byte_s)

    def cost(self, nbytes: float) -> float:
        return self.fixed_s + self.per_byte_s * nbytes


@dataclass(frozen=True)
class HttpCost(Section):
    """One HTTP request through a server stack: parse, decode, encode, respond.
    ``gil_share`` of it holds the GIL (pure-Python stacks: nearly all of it)."""

    WHERE = "http"

    fixed_s: float = 0.0
    per_byte_s: float = 0.0
    gil_share: float = 1.0

    def __post_init__(self) -> None:
        _nonneg("http", fixed_s=self.fixed_s, per_byte_s=self.per_byte_s)
        if not 0 <= self.gil_share <= 1:
            raise ProfileError(f"http: gil_share must be in [0, 1], got {self.gil_share}")

    def cost(self, nbytes: float) -> float:
        return self.fixed_s + self.per_byte_s * nbytes


@dataclass(frozen=True)
class EventLoopCost(Section):
    """asyncio costs: loop work per request (task, futures, callbacks), the hand-off of an
    inference call to an executor thread and back, and the extra stall per inline inference
    (the loop blocked: timers and other tasks run late).  All GIL-held."""

    WHERE = "event_loop"

    per_request_s: float = 0.0
    thread_handoff_s: float = 0.0
    inline_block_s: float = 0.0

    def __post_init__(self) -> None:
        _nonneg(
            "event_loop", per_request_s=self.per_request_s,
            thread_handoff_s=self.thread_handoff_s, inline_block_s=self.inline_block_s,
        )

@dataclass(frozen=True)
class MemoryCost(Section):
    """Resident memory: the server process, each extra worker process (interpreter + torch),
    each worker thread (stacks, allocator arenas).  Loaded models add ``ModelProfile.memory_mb``
    per copy (one copy per process)."""

    WHERE = "memory"

    server_base_mb: float = 0.0
    process_base_mb: float = 0.0
    thread_mb: float = 0.0

    def __post_init__(self) -> None:
        _nonneg(
            "memory", server_base_mb=self.server_base_mb,
            process_base_mb=self.process_base_mb, thread_mb=self.thread_mb,
        )

@dataclass(frozen=True)
class GilCost(Section):
    """The GIL under contention (:mod:`servelab.core.gil`).

    ``pairs[a][b]`` is the measured progress rate of a kind-``a`` thread (a model, or
    ``frontend``: the server's own request handling) running beside a kind-``b`` thread of the
    same interpreter on otherwise idle cores (1.0 = as fast as alone) — the co-run benchmark.
    Where pairs are missing the fluid token model applies: each model's ``gil_share`` and
    ``contention_overhead``, the fraction of the token's capacity each extra contender wastes
    (hand-offs, convoys), so a GIL-bound model can get *slower* beyond the thread count that
    saturates the token.  ``fit`` keeps how well the fluid model explains the pairs.
    """

    WHERE = "gil"

    contention_overhead: float = 0.0
    pairs: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    fit: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _nonneg("gil", contention_overhead=self.contention_overhead)
        for a, row in self.pairs.items():
            for b, r in row.items():
                if not (0 < r <= 4 and math.isfinite(r)):
                    raise ProfileError(f"gil.pairs[{a}][{b}]: a rate in (0, 4], got {r}")

    def capacity(self, contenders: int) -> float:
        """Useful fraction of the token's time with ``contenders`` threads wanting it."""
        return 1.0 / (1.0 + self.contention_overhead * max(contenders - 1, 0))

    def pair_table(self) -> dict[tuple[str, str], float]:
        """``pairs`` keyed by ``(a, b)`` (what the simulator's CPU model reads)."""
        return {(a, b): r for a, row in self.pairs.items() for b, r in row.items()}


# -- the live front end and the load generator -----------------------------------------------------

SETUPS = ("threads", "processes", "async-inline", "async-thread", "async-process")
"""Server setups with their own front end: concurrency, and for async where inference runs."""


def setup_name(concurrency: str, offload: str = "thread") -> str:
    """The setup a configuration runs: ``threads``, ``processes`` or ``async-<offload>``."""
    return f"async-{offload}" if concurrency == "async" else concurrency


@dataclass(frozen=True)
class FrontEndCost(Section):
    """A server's own request handling, measured live (``calibrate``'s front-end stage).

    ``cpu[model]``: CPU seconds per request spent in the server outside inference — HTTP
    parsing, OIP decode and encode, the hand-off to the worker (IPC included for process
    pools) — as a function of the request's input size; it runs in the front end's
    interpreter (the simulator derives which from the configuration) with ``in_share`` of it
    before the request reaches the queue and the rest after it completes.  ``serial``: one
    front-end pass at a time (an asyncio event loop).  ``convoy[model]``: the extra seconds a
    request spends in the front end while one inference of ``model`` runs in the same
    interpreter, beyond what the CPU model explains (GIL hand-offs to a thread that re-acquires
    after every socket call wait for the holder's switch interval).  ``latency_s``: the
    path's time that takes no CPU — thread wake-ups, the loopback — per request, half on the
    way in and half on the way out.  ``service_scale[model]``: the CPU one inference costs in
    this server over the model's benchmarked service time at the bench's low rate — a
    diagnostic the simulator does not apply: applied, it fitted one calibration's validation
    and overshot the next (the ratio falls with load and drifts with the machine's state).
    ``fit`` keeps the measurement's details.
    """

    WHERE = "frontend"

    cpu: Mapping[str, CostCurve] = field(default_factory=dict)
    convoy: Mapping[str, float] = field(default_factory=dict)
    serial: bool = False
    in_share: float = 0.7
    latency_s: float = 0.0
    service_scale: Mapping[str, float] = field(default_factory=dict)
    fit: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _nonneg("frontend", in_share=self.in_share, latency_s=self.latency_s, **{f"convoy[{m}]": v
                                                       for m, v in self.convoy.items()})
        if self.in_share > 1:
            raise ProfileError("frontend: in_share must be in [0, 1]")

@dataclass(frozen=True)
class ClientCost(Section):
    """The load generator's own CPU per request (``cpu[model]`` vs input size), measured
    while it drove the live servers.  ``colocated``: it shares the cores with the server (as
    on the machine the profile was measured on; the simulator then charges it, half at the
    send and half at the receive) — set False to ask what the server would do on its own."""

    WHERE = "client"

    cpu: Mapping[str, CostCurve] = field(default_factory=dict)
    colocated: bool = True
