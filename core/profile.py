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
The sections themselves live in :mod:`servelab.core.profile_parts` (re-exported here); this
module assembles them, reads and writes the JSON, and holds the built-in profiles.  No torch
here: core/ is imported by the simulator, which must not need it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from servelab.core.plain import from_plain, to_plain
from servelab.core.profile_parts import (
    CONCURRENCY_STACKS,
    DISTRIBUTIONS,
    SETUPS,
    ClientCost,
    CostCurve,
    EventLoopCost,
    FrontEndCost,
    GilCost,
    HttpCost,
    Interference,
    IpcCost,
    MachineInfo,
    MemoryCost,
    ModelProfile,
    ProfileError,
    setup_name,
)

SCHEMA_VERSION = 2
"""Bump on any incompatible change to the JSON form.  2: the live front end, the load
generator's CPU and measured GIL co-run rates (a version-1 profile is refused: re-calibrate)."""


__all__ = [
    "CONCURRENCY_STACKS",
    "ClientCost",
    "CostCurve",
    "DISTRIBUTIONS",
    "EventLoopCost",
    "FrontEndCost",
    "GilCost",
    "HttpCost",
    "Interference",
    "IpcCost",
    "MachineInfo",
    "MemoryCost",
    "ModelProfile",
    "Profile",
    "ProfileError",
    "SCHEMA_VERSION",
    "SETUPS",
    "default_profile",
    "load_profile",
    "queueing_profile",
    "setup_name",
]


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

    def for_kernel(self, kernel: str) -> tuple[Profile, str]:
        """The profile a server on ``kernel`` runs on: each model a kernel changes takes the
        costs and GIL co-run rates calibrated for it on that kernel (``<model>+<kernel>``
        entries, from ``calibrate --kernels``), and a line saying what was used."""
        from servelab.core.config import kernel_kind

        if kernel == "torch":
            return self, "torch"
        swap = {m: kernel_kind(m, kernel) for m in self.models}
        swap = {m: k for m, k in swap.items() if k != m}
        have = {m: k for m, k in swap.items() if k in self.models}
        missing = sorted(set(swap) - set(have))
        models = {m: self.models[have.get(m, m)] for m in self.models if "+" not in m}
        pairs = {a: dict(row) for a, row in self.gil.pairs.items()}
        for m, k in have.items():
            if k in pairs:
                pairs[m] = pairs[k]
            for row in pairs.values():
                if k in row:
                    row[m] = row[k]
        pairs = {a: {b: r for b, r in row.items() if "+" not in b}
                 for a, row in pairs.items() if "+" not in a}
        out = replace(self, models=models, gil=replace(self.gil, pairs=pairs))
        used = f"{kernel}: calibrated for {', '.join(sorted(have))}" if have else kernel
        if missing:
            used += (f"; not calibrated for {', '.join(missing)} (their torch costs are used: "
                     f"servelab calibrate --kernels {kernel})")
        return out, used

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
        plain = to_plain(self)
        return {"schema_version": plain.pop("schema_version"), **plain}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        if not isinstance(data, Mapping):
            raise ProfileError("profile: expected a JSON object at the top level")
        if "schema_version" not in data:
            raise ProfileError("profile: no schema_version field; is this a servelab profile?")
        version = data["schema_version"]
        if version != SCHEMA_VERSION:
            raise ProfileError(_version_message(version))
        return from_plain(cls, data, "profile", ProfileError)

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
