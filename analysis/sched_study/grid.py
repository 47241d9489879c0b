"""What the scheduling study measures: the policies (study name -> queue policy and runtime
predictor), the classes' short names, each cell's server configuration and its workload at a
given rate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from servelab.core.config import ServerConfig
from servelab.core.workload import WorkloadSpec

STUDY_POLICIES: dict[str, tuple[str, str]] = {
    "fifo": ("fifo", "mean"),
    "priority": ("priority", "mean"),
    "sjf-mean": ("sjf", "mean"),
    "sjf-learned": ("sjf", "learned"),
    "sjf-oracle": ("sjf", "oracle"),
    "mlfq": ("mlfq", "mean"),
}
"""Study policy -> (queue policy, runtime predictor)."""
SIM_ONLY = ("sjf-oracle",)
LIVE_DEFAULT = ("fifo", "priority", "sjf-learned", "mlfq")
SHORT = {"mobilenet_v2": "mnet", "lstm_forecaster": "lstm", "distilbert": "bert"}
QUEUE_CAPACITY = 1024


def short(model: str) -> str:
    return SHORT.get(model, model[:6])


def study_config(concurrency: str, policy: str, workers: int, models: Sequence[str]) -> ServerConfig:
    """The configuration every cell uses: no model locks, a queue long enough for 95% load."""
    return ServerConfig(
        concurrency=concurrency, workers=workers, scheduler=STUDY_POLICIES[policy][0],
        model_lock="none", queue_capacity=QUEUE_CAPACITY, models=tuple(models),
    )


def at_rate(spec: WorkloadSpec, rate: float, duration: float, warmup: float, seed: int) -> WorkloadSpec:
    """``spec``'s mix, sizes and priorities at mean ``rate`` for ``duration`` seconds."""
    return replace(spec.scaled(rate / spec.mean_rate()), duration=duration, warmup_s=warmup,
                   seed=seed, phases=())
