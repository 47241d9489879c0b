"""The machine profile: what calibration measures and the simulator reads.

A profile is plain data — frozen dataclasses with a JSON form — describing one machine:

* ``machine`` — where the numbers come from (CPU model, cores, memory, kernel, Python/torch
  versions, thread settings, date, and a ``source`` line saying how they were obtained);
* ``models`` — per model, the service-time model: a cost curve (seconds as a function of input
  size) for preprocess, forward and postprocess, how the forward pass scales with batch size and
  intra-op threads, the noise around it (distribution and coefficient of variation), the number
  of forward stages (MLFQ preemption points), the share of its CPU time that holds the GIL, its
  payload sizes and its memory per worker;
* ``interference`` — slowdown factor of each active compute thread when ``k`` run at once,
  separately for threads in one process and for separate processes;
* ``gil`` — measured co-run rates of two threads of one interpreter (per pair of kinds), and
  the fluid fallback: how much of the GIL's capacity contention wastes per extra contender;
* ``ipc`` — the fixed + per-byte cost of handing a request to a worker process and back;
* ``http`` — HTTP stack overhead per concurrency model (``threads`` and ``processes`` front
  ends are Flask/waitress, ``async`` is FastAPI/uvicorn);
* ``event_loop`` — asyncio costs: per-request loop work, the hand-off to an executor thread,
  and the extra stall when inference runs inline on the loop;
* ``memory`` — base memory of the server, of each worker process and of each thread;
* ``frontend`` — per server setup, measured live: front-end CPU per request per model, the
  convoy delay inference threads add to it, and whether it is one event loop;
* ``client`` — the load generator's CPU per request, and whether it shares the cores.

Every profile carries ``schema_version``; :meth:`Profile.from_dict` refuses any other version
with a message saying what to do.  :func:`default_profile` builds a profile from the figures in
the design document (labelled as such: it is not a calibration of this machine).
No torch here: core/ is imported by the simulator, which must not need it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_VERSION = 2
"""Bump on any incompatible change to the JSON form.  2: the live front end, the load
generator's CPU and measured GIL co-run rates (a version-1 profile is refused: re-calibrate)."""

DISTRIBUTIONS = ("deterministic", "exponential", "gamma", "lognormal")
"""Shapes of the multiplicative service-time noise (mean 1, coefficient of variation ``cv``)."""

CONCURRENCY_STACKS = ("threads", "processes", "async")


class ProfileError(ValueError):
    """A profile that cannot be read: wrong schema version, unknown field, bad value."""


def _check_keys(where: str, data: Mapping[str, Any], cls: type) -> None:
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ProfileError(f"{where}: unknown field(s) {unknown}; valid: {sorted(allowed)}")


def _nonneg(where: str, **values: float) -> None:
    for name, v in values.items():
        if not (v >= 0 and math.isfinite(v)):
            raise ProfileError(f"{where}: {name} must be a finite number >= 0, got {v}")


# -- machine -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MachineInfo:
    """Where a profile was measured.  Unknown keys (calibration may record more) go to
    ``extra`` so that metadata is never lost on a round trip."""

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

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["thread_settings"] = dict(self.thread_settings)
        d["extra"] = dict(self.extra)
        return d


# -- service-time model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CostCurve:
    """Seconds of CPU work as a function of input size.

    Without ``points`` the curve is ``fixed_s + per_unit_s * size``.  With ``points`` —
    measured ``(size, seconds)`` pairs, the natural output of a calibration — it is
    piecewise-linear through them: between ``(0, fixed_s)`` and the first point below it, and
    extrapolated with the last segment's slope above the last point.
    """

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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CostCurve:
        _check_keys("cost curve", data, cls)
        d = dict(data)
        if "points" in d:
            d["points"] = tuple((float(s), float(t)) for s, t in d["points"])
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return {
            "fixed_s": self.fixed_s,
            "per_unit_s": self.per_unit_s,
            "points": [list(p) for p in self.points],
        }

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
class ModelProfile:
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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelProfile:
        _check_keys("model", data, cls)
        d = dict(data)
        for k in ("preprocess", "forward", "postprocess"):
            if k in d:
                d[k] = CostCurve.from_dict(d[k])
        if "intra_op_speedup" in d:
            d["intra_op_speedup"] = tuple(float(x) for x in d["intra_op_speedup"])
        if "cold" in d:
            d["cold"] = tuple((float(g), float(x)) for g, x in d["cold"])
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        for k in ("preprocess", "forward", "postprocess"):
            d[k] = getattr(self, k).to_dict()
        d["intra_op_speedup"] = list(self.intra_op_speedup)
        d["cold"] = [list(p) for p in self.cold]
        return d

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
class Interference:
    """Slowdown of each active compute thread when ``k`` run at once (``k = 1, 2, ...``):
    memory bandwidth, caches, frequency (GIL contention is :class:`GilCost`'s).  Interpolated linearly; the last factor holds beyond the table.
    ``k`` counts busy compute threads, so it may exceed the cores (then the cores are also
    time-shared, which the simulator models separately)."""

    threads: tuple[float, ...] = (1.0,)
    processes: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        _curve("interference.threads", self.threads)
        _curve("interference.processes", self.processes)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Interference:
        _check_keys("interference", data, cls)
        return cls(**{k: _curve(f"interference.{k}", v) for k, v in data.items()})

    def to_dict(self) -> dict[str, Any]:
        return {"threads": list(self.threads), "processes": list(self.processes)}

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
class IpcCost:
    """Handing one request to a worker process and its response back (pickle + pipe)."""

    fixed_s: float = 0.0
    per_byte_s: float = 0.0

    def __post_init__(self) -> None:
        _nonneg("ipc", fixed_s=self.fixed_s, per_byte_s=self.per_byte_s)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IpcCost:
        _check_keys("ipc", data, cls)
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return {"fixed_s": self.fixed_s, "per_byte_s": self.per_byte_s}

    def cost(self, nbytes: float) -> float:
        return self.fixed_s + self.per_byte_s * nbytes


@dataclass(frozen=True)
class HttpCost:
    """One HTTP request through a server stack: parse, decode, encode, respond.
    ``gil_share`` of it holds the GIL (pure-Python stacks: nearly all of it)."""

    fixed_s: float = 0.0
    per_byte_s: float = 0.0
    gil_share: float = 1.0

    def __post_init__(self) -> None:
        _nonneg("http", fixed_s=self.fixed_s, per_byte_s=self.per_byte_s)
        if not 0 <= self.gil_share <= 1:
            raise ProfileError(f"http: gil_share must be in [0, 1], got {self.gil_share}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HttpCost:
        _check_keys("http", data, cls)
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def cost(self, nbytes: float) -> float:
        return self.fixed_s + self.per_byte_s * nbytes


@dataclass(frozen=True)
class EventLoopCost:
    """asyncio costs: loop work per request (task, futures, callbacks), the hand-off of an
    inference call to an executor thread and back, and the extra stall per inline inference
    (the loop blocked: timers and other tasks run late).  All GIL-held."""

    per_request_s: float = 0.0
    thread_handoff_s: float = 0.0
    inline_block_s: float = 0.0

    def __post_init__(self) -> None:
        _nonneg(
            "event_loop", per_request_s=self.per_request_s,
            thread_handoff_s=self.thread_handoff_s, inline_block_s=self.inline_block_s,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EventLoopCost:
        _check_keys("event_loop", data, cls)
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class MemoryCost:
    """Resident memory: the server process, each extra worker process (interpreter + torch),
    each worker thread (stacks, allocator arenas).  Loaded models add ``ModelProfile.memory_mb``
    per copy (one copy per process)."""

    server_base_mb: float = 0.0
    process_base_mb: float = 0.0
    thread_mb: float = 0.0

    def __post_init__(self) -> None:
        _nonneg(
            "memory", server_base_mb=self.server_base_mb,
            process_base_mb=self.process_base_mb, thread_mb=self.thread_mb,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MemoryCost:
        _check_keys("memory", data, cls)
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class GilCost:
    """The GIL under contention (:mod:`servelab.core.gil`).

    ``pairs[a][b]`` is the measured progress rate of a kind-``a`` thread (a model, or
    ``frontend``: the server's own request handling) running beside a kind-``b`` thread of the
    same interpreter on otherwise idle cores (1.0 = as fast as alone) — the co-run benchmark.
    Where pairs are missing the fluid token model applies: each model's ``gil_share`` and
    ``contention_overhead``, the fraction of the token's capacity each extra contender wastes
    (hand-offs, convoys), so a GIL-bound model can get *slower* beyond the thread count that
    saturates the token.  ``fit`` keeps how well the fluid model explains the pairs.
    """

    contention_overhead: float = 0.0
    pairs: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    fit: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _nonneg("gil", contention_overhead=self.contention_overhead)
        for a, row in self.pairs.items():
            for b, r in row.items():
                if not (0 < r <= 4 and math.isfinite(r)):
                    raise ProfileError(f"gil.pairs[{a}][{b}]: a rate in (0, 4], got {r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GilCost:
        _check_keys("gil", data, cls)
        d = dict(data)
        d["pairs"] = {str(a): {str(b): float(r) for b, r in row.items()}
                      for a, row in d.get("pairs", {}).items()}
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return {"contention_overhead": self.contention_overhead,
                "pairs": {a: dict(row) for a, row in self.pairs.items()}, "fit": dict(self.fit)}

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


def _curves(where: str, data: Mapping[str, Any]) -> dict[str, CostCurve]:
    return {str(m): CostCurve.from_dict(c) for m, c in data.items()}


@dataclass(frozen=True)
class FrontEndCost:
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
    this server (the worker's own path and caches colder than in a back-to-back benchmark)
    over the model's benchmarked service time.  ``fit`` keeps the measurement's details.
    """

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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FrontEndCost:
        _check_keys("frontend", data, cls)
        d = dict(data)
        d["cpu"] = _curves("frontend.cpu", d.get("cpu", {}))
        d["convoy"] = {str(m): float(v) for m, v in d.get("convoy", {}).items()}
        d["service_scale"] = {str(m): float(v) for m, v in d.get("service_scale", {}).items()}
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return {"cpu": {m: c.to_dict() for m, c in self.cpu.items()},
                "convoy": dict(self.convoy), "serial": self.serial,
                "in_share": self.in_share, "latency_s": self.latency_s,
                "service_scale": dict(self.service_scale), "fit": dict(self.fit)}


@dataclass(frozen=True)
class ClientCost:
    """The load generator's own CPU per request (``cpu[model]`` vs input size), measured
    while it drove the live servers.  ``colocated``: it shares the cores with the server (as
    on the machine the profile was measured on; the simulator then charges it, half at the
    send and half at the receive) — set False to ask what the server would do on its own."""

    cpu: Mapping[str, CostCurve] = field(default_factory=dict)
    colocated: bool = True

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClientCost:
        _check_keys("client", data, cls)
        d = dict(data)
        d["cpu"] = _curves("client.cpu", d.get("cpu", {}))
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return {"cpu": {m: c.to_dict() for m, c in self.cpu.items()}, "colocated": self.colocated}


# -- the profile ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """Everything the simulator needs to know about one machine."""

    machine: MachineInfo = field(default_factory=MachineInfo)
    models: Mapping[str, ModelProfile] = field(default_factory=dict)
    interference: Interference = field(default_factory=Interference)
    gil: GilCost = field(default_factory=GilCost)
    ipc: IpcCost = field(default_factory=IpcCost)
    http: Mapping[str, HttpCost] = field(default_factory=dict)
    event_loop: EventLoopCost = field(default_factory=EventLoopCost)
    memory: MemoryCost = field(default_factory=MemoryCost)
    frontend: Mapping[str, FrontEndCost] = field(default_factory=dict)
    client: ClientCost = field(default_factory=ClientCost)
    notes: str = ""
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise ProfileError(_version_message(self.schema_version))
        unknown = sorted(set(self.http) - set(CONCURRENCY_STACKS))
        if unknown:
            raise ProfileError(
                f"http: unknown stack(s) {unknown}; valid: {', '.join(CONCURRENCY_STACKS)}"
            )
        unknown = sorted(set(self.frontend) - set(SETUPS))
        if unknown:
            raise ProfileError(f"frontend: unknown setup(s) {unknown}; valid: {', '.join(SETUPS)}")

    # -- look-ups ---------------------------------------------------------------------------
    def model(self, name: str) -> ModelProfile:
        try:
            return self.models[name]
        except KeyError:
            raise ValueError(
                f"profile has no model {name!r}; it has: {', '.join(self.models) or 'none'}"
            ) from None

    def http_cost(self, concurrency: str) -> HttpCost:
        """The HTTP overhead of the server stack a concurrency model uses (zero if absent)."""
        return self.http.get(concurrency, HttpCost(gil_share=0.0))

    def memory_mb(self, concurrency: str, workers: int, models: Sequence[str]) -> float:
        """Estimated resident memory of a server configuration."""
        per_copy = sum(self.models[m].memory_mb for m in models if m in self.models)
        m = self.memory
        if concurrency == "threads":
            return m.server_base_mb + per_copy + workers * m.thread_mb
        # processes (and async offload=process): one model copy per worker process
        return m.server_base_mb + workers * (m.process_base_mb + per_copy)

    @property
    def digest(self) -> str:
        """A short hash of the profile's content (sweep points key on it); numbers are
        hashed as floats, so ``64`` and ``64.0`` — equal values — hash alike."""
        blob = json.dumps(_floats(self.to_dict()), sort_keys=True, default=str)
        return hashlib.sha1(blob.encode()).hexdigest()[:10]

    # -- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "machine": self.machine.to_dict(),
            "models": {name: m.to_dict() for name, m in self.models.items()},
            "interference": self.interference.to_dict(),
            "gil": self.gil.to_dict(),
            "ipc": self.ipc.to_dict(),
            "http": {k: v.to_dict() for k, v in self.http.items()},
            "event_loop": self.event_loop.to_dict(),
            "memory": self.memory.to_dict(),
            "frontend": {k: v.to_dict() for k, v in self.frontend.items()},
            "client": self.client.to_dict(),
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        if not isinstance(data, Mapping):
            raise ProfileError("profile: expected a JSON object at the top level")
        if "schema_version" not in data:
            raise ProfileError("profile: no schema_version field; is this a servelab profile?")
        version = data["schema_version"]
        if version != SCHEMA_VERSION:
            raise ProfileError(_version_message(version))
        _check_keys("profile", data, cls)
        return cls(
            schema_version=int(version),
            machine=MachineInfo.from_dict(data.get("machine", {})),
            models={str(k): ModelProfile.from_dict(v) for k, v in data.get("models", {}).items()},
            interference=Interference.from_dict(data.get("interference", {})),
            gil=GilCost.from_dict(data.get("gil", {})),
            ipc=IpcCost.from_dict(data.get("ipc", {})),
            http={str(k): HttpCost.from_dict(v) for k, v in data.get("http", {}).items()},
            event_loop=EventLoopCost.from_dict(data.get("event_loop", {})),
            memory=MemoryCost.from_dict(data.get("memory", {})),
            frontend={str(k): FrontEndCost.from_dict(v)
                      for k, v in data.get("frontend", {}).items()},
            client=ClientCost.from_dict(data.get("client", {})),
            notes=str(data.get("notes", "")),
        )

    def save(self, path: str | Path) -> None:
        """Write the profile as JSON (atomically: a temporary file, then a rename)."""
        import os
        import tempfile

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self.to_dict(), f, indent=2, sort_keys=False)
                f.write("\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"profile not found: {path}")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ProfileError(f"profile {path}: not valid JSON ({exc})") from None
        try:
            return cls.from_dict(data)
        except (ProfileError, TypeError) as exc:
            raise ProfileError(f"profile {path}: {exc}") from None


def _floats(x: Any) -> Any:
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return x
    if isinstance(x, int | float):
        return float(x)
    if isinstance(x, Mapping):
        return {k: _floats(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_floats(v) for v in x]
    return x


def _version_message(version: Any) -> str:
    return (
        f"profile schema version {version!r} is not the supported version {SCHEMA_VERSION}; "
        "re-run the calibration (servelab calibrate) to write a current profile"
    )


def load_profile(path: str | Path | None) -> Profile:
    """The profile at ``path``, or :func:`default_profile` when ``path`` is None."""
    return default_profile() if path is None else Profile.load(path)


# -- built-in profiles ----------------------------------------------------------------------------


def default_profile() -> Profile:
    """A profile from the figures in DESIGN.md ("Facts measured on these machines").

    Not a calibration: the per-request costs are the design document's (torch CPU, one intra-op
    thread, batch 1, on the 2-core machine); the GIL shares, interference curves and overheads
    are rough values consistent with its qualitative facts (MobileNetV2 stops scaling at 2
    threads, DistilBERT scales with threads and processes alike, intra-op threads help little).
    """
    ms = 1e-3
    models = {
        # MobileNetV2 at 32x32 ~ 9 ms; many small ops, each with Python overhead: GIL-bound.
        "mobilenet_v2": ModelProfile(
            preprocess=CostCurve(fixed_s=0.4 * ms),
            forward=CostCurve(fixed_s=8.4 * ms),
            postprocess=CostCurve(fixed_s=0.2 * ms),
            stages=4, batch_exponent=0.8, intra_op_speedup=(1.0, 1.3, 1.5, 1.6),
            dist="lognormal", cv=0.08, gil_share=0.5,
            input_bytes_fixed=3 * 32 * 32, output_bytes=10 * 4, memory_mb=60.0,
        ),
        # DistilBERT: 130 ms at 64 tokens, 270 ms at 128, 730 ms at 512; big GEMMs release the GIL.
        "distilbert": ModelProfile(
            preprocess=CostCurve(fixed_s=0.3 * ms, per_unit_s=0.002 * ms),
            forward=CostCurve(
                fixed_s=10 * ms,
                points=((64, 129.372 * ms), (128, 269.244 * ms), (512, 728.476 * ms)),
            ),
            postprocess=CostCurve(fixed_s=0.2 * ms),
            stages=8, batch_exponent=0.9, intra_op_speedup=(1.0, 1.6, 2.0, 2.2),
            dist="lognormal", cv=0.05, gil_share=0.05,
            input_bytes_per_unit=6.0, output_bytes=2 * 4, memory_mb=300.0,
        ),
        # The 2-layer LSTM forecaster: 2.4 ms at lookback 96, 10 ms at 720 (linear in between).
        "lstm_forecaster": ModelProfile(
            preprocess=CostCurve(fixed_s=0.1 * ms, per_unit_s=0.0005 * ms),
            forward=CostCurve(fixed_s=1.0308 * ms, per_unit_s=0.011679 * ms),
            postprocess=CostCurve(fixed_s=0.1 * ms),
            stages=2, batch_exponent=0.7, intra_op_speedup=(1.0, 1.2, 1.3, 1.3),
            dist="lognormal", cv=0.1, gil_share=0.25,
            input_bytes_per_unit=7 * 4, output_bytes=96 * 4, memory_mb=5.0,
        ),
    }
    return Profile(
        machine=MachineInfo(
            cpu_model="unknown (design-doc figures)", cores=2, torch="2.14",
            thread_settings={"torch_num_threads": 1, "OMP_NUM_THREADS": "1"},
            source="design-doc defaults, not calibrated",
        ),
        models=models,
        interference=Interference(
            threads=(1.0, 1.04, 1.08, 1.12, 1.16, 1.2, 1.24, 1.28),
            processes=(1.0, 1.03, 1.06, 1.09, 1.12, 1.15, 1.18, 1.21),
        ),
        gil=GilCost(contention_overhead=0.1),
        ipc=IpcCost(fixed_s=0.15 * ms, per_byte_s=1e-9),
        http={
            "threads": HttpCost(fixed_s=1.0 * ms, per_byte_s=20e-9, gil_share=1.0),
            "processes": HttpCost(fixed_s=1.0 * ms, per_byte_s=20e-9, gil_share=1.0),
            "async": HttpCost(fixed_s=0.6 * ms, per_byte_s=20e-9, gil_share=1.0),
        },
        event_loop=EventLoopCost(
            per_request_s=0.05 * ms, thread_handoff_s=0.08 * ms, inline_block_s=0.02 * ms
        ),
        memory=MemoryCost(server_base_mb=250.0, process_base_mb=180.0, thread_mb=8.0),
        notes="Built by servelab.core.profile.default_profile() from DESIGN.md; replace with a "
        "calibrated profile (servelab calibrate) for real predictions.",
    )


def queueing_profile(
    services: Mapping[str, float | tuple[float, str, float]],
    cores: int = 1,
    stages: int = 1,
) -> Profile:
    """A 'pure queue' profile for checking the simulator against queueing theory.

    ``services`` maps a model name to its mean service time, or to ``(mean, dist, cv)``
    (default: exponential).  No overheads, no GIL, no interference, no size dependence: the
    simulated server is then exactly an M/G/c queue (or M/G/1-PS when workers exceed cores).
    """
    models = {}
    for name, spec in services.items():
        mean, dist, cv = (float(spec), "exponential", 1.0) if not isinstance(spec, tuple) else spec
        models[name] = ModelProfile(
            forward=CostCurve(fixed_s=float(mean)), stages=stages, dist=dist, cv=float(cv)
        )
    return Profile(
        machine=MachineInfo(cpu_model="ideal", cores=cores, source="queueing-theory test profile"),
        models=models,
    )
