"""The send schedule: every request of a run, with its intended send time, fixed up front.

A :class:`Schedule` is a :class:`~servelab.core.workload.WorkloadSpec` sampled once — columns of
intended send offsets (seconds from the run's start), models, input sizes, priorities and
deadlines — so that nothing the server does can change *when* a request is due.  It splits
round-robin into per-process shares (:meth:`Schedule.share`), each keeping the global request
ids, so the records of N sender processes merge back into one run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from servelab.core.workload import WorkloadSpec


@dataclass(frozen=True)
class Schedule:
    """Columns, one row per request, sorted by intended send time."""

    request_id: np.ndarray  # int64, global ids (0..n-1 over the whole run)
    times: np.ndarray  # float64, intended send offset in seconds from the run's start
    model_idx: np.ndarray  # int16, index into ``models``
    models: tuple[str, ...]
    input_size: np.ndarray  # int64
    priority: np.ndarray  # int64, -1 = none
    deadline: np.ndarray  # float64, absolute offset in seconds, NaN = none
    phase: np.ndarray  # int16
    duration: float  # the schedule's span in seconds (requests lie in [0, duration))

    def __len__(self) -> int:
        return int(self.times.size)

    @classmethod
    def from_spec(cls, spec: WorkloadSpec) -> Schedule:
        arr = spec.generate()
        return cls(
            request_id=np.arange(len(arr), dtype=np.int64),
            times=np.asarray(arr.times, dtype=np.float64),
            model_idx=np.asarray(arr.model_idx, dtype=np.int16),
            models=tuple(arr.models),
            input_size=np.asarray(arr.input_size, dtype=np.int64),
            priority=np.asarray(arr.priority, dtype=np.int64),
            deadline=np.asarray(arr.deadline, dtype=np.float64),
            phase=np.asarray(arr.phase, dtype=np.int16),
            duration=float(spec.total_duration),
        )

    def take(self, index: np.ndarray) -> Schedule:
        """The rows selected by ``index`` (ids and duration kept)."""
        return Schedule(
            request_id=self.request_id[index], times=self.times[index],
            model_idx=self.model_idx[index], models=self.models,
            input_size=self.input_size[index], priority=self.priority[index],
            deadline=self.deadline[index], phase=self.phase[index], duration=self.duration,
        )

    def share(self, k: int, n: int) -> Schedule:
        """Process ``k``'s share of ``n``: every n-th request starting at row ``k``."""
        if not 0 <= k < n:
            raise ValueError(f"share {k} of {n} does not exist")
        return self.take(np.arange(k, len(self), n))

    def model_names(self) -> np.ndarray:
        return np.asarray(self.models, dtype=object)[self.model_idx]

    def timeout_ms(self) -> np.ndarray:
        """Per-request relative deadline in milliseconds (NaN = none)."""
        return (self.deadline - self.times) * 1e3


def prepare_spec(
    spec: WorkloadSpec, rate: float | None = None, duration: float | None = None,
    seed: int | None = None, warmup_s: float | None = None,
) -> WorkloadSpec:
    """Apply the command-line overrides to a workload.

    ``rate`` rescales every arrival rate so that the workload's *mean* rate becomes ``rate``
    (bursts and phases keep their shape); ``duration`` cuts or extends a single-phase workload
    (a phased workload's phases are scaled in proportion).
    """
    from dataclasses import replace

    if duration is not None:
        if not duration > 0:
            raise ValueError(f"duration must be > 0, got {duration}")
        if spec.phases:
            f = duration / spec.total_duration
            spec = replace(spec, phases=tuple(replace(p, duration=p.duration * f) for p in spec.phases))
        else:
            spec = replace(spec, duration=float(duration))
    if rate is not None:
        if not rate > 0 or math.isinf(rate):
            raise ValueError(f"rate must be a positive number, got {rate}")
        spec = spec.scaled(rate / spec.mean_rate())
    if seed is not None:
        spec = spec.with_seed(seed)
    if warmup_s is not None:
        if warmup_s < 0:
            raise ValueError("warmup must be >= 0")
        spec = replace(spec, warmup_s=float(warmup_s))
    return spec
