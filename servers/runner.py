"""Executing one batch, stage by stage: the piece every executor shares (inference threads,
the asyncio event loop, and worker processes).

A :class:`Work` is the model-side state of a batch: the rows it was built from, the preprocessed
batch, the index of the next stage and the state between stages.  Executors call
:meth:`Work.prepare`, then :meth:`Work.step` until :attr:`Work.done` (asking the scheduler after
each stage whether to stop there — MLFQ preemption), then :meth:`Work.outputs`.  A preempted
``Work`` keeps ``(batch, stage, state)``; that triple is all a resumption needs, so a batch
preempted in one worker process can resume in another.

The stage loop is :meth:`ZooModel.run_stages` unrolled: the same ``stages(batch)`` functions,
each run under ``torch.inference_mode()``, so the output equals ``model.infer``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from servelab.servers.zoo.base import Inputs, StageTimes, ZooModel


def _inference_mode() -> Any:
    import torch

    return torch.inference_mode()


class Work:
    """One batch in execution.  Not thread-safe: one executor runs it at a time."""

    def __init__(
        self, model: ZooModel, rows: Sequence[Inputs] | None = None, batch: Any = None,
        stage: int = 0, state: Any = None,
    ):
        if rows is None and batch is None:
            raise ValueError("Work needs rows (fresh) or a batch (resumed)")
        self.model = model
        self.rows = list(rows) if rows is not None else None
        self.n = len(self.rows) if self.rows is not None else -1
        self.batch = batch
        self.stage = stage
        self.state = state
        self.times = StageTimes()
        self._stages: list[Callable[[Any], Any]] | None = None

    def prepare(self) -> None:
        """Preprocess the rows into a batch (once)."""
        if self.batch is not None:
            return
        t0 = time.perf_counter()
        self.batch = self.model.preprocess(self.rows or [])
        self.state = self.batch
        self.stage = 0
        self.times.preprocess += time.perf_counter() - t0

    @property
    def stages(self) -> list[Callable[[Any], Any]]:
        if self._stages is None:
            self.prepare()
            with _inference_mode():
                self._stages = self.model.stages(self.batch)
        return self._stages

    @property
    def n_stages(self) -> int:
        return len(self.stages)

    @property
    def done(self) -> bool:
        return self.stage >= self.n_stages

    def step(self) -> float:
        """Run the next stage; returns its wall-clock seconds."""
        fn = self.stages[self.stage]
        t0 = time.perf_counter()
        with _inference_mode():
            self.state = fn(self.state if self.stage > 0 else self.batch)
        ran = time.perf_counter() - t0
        self.stage += 1
        self.times.forward += ran
        return ran

    def outputs(self, n: int) -> list[Inputs]:
        """Postprocess the finished forward pass into ``n`` per-row output dicts."""
        if not self.done:
            raise RuntimeError(f"outputs() before the last stage ({self.stage}/{self.n_stages})")
        t0 = time.perf_counter()
        out = self.model.postprocess(self.state, n)
        self.times.postprocess += time.perf_counter() - t0
        return out

    def run(self, n: int, should_stop: Callable[[float], bool] | None = None) -> bool:
        """Run stages until done (True) or ``should_stop(stage_seconds)`` says stop (False).
        ``should_stop`` is asked after every stage but the last."""
        self.prepare()
        while not self.done:
            ran = self.step()
            if should_stop is not None and not self.done and should_stop(ran):
                return False
        return True

    def suspended(self) -> tuple[Any, int, Any]:
        """What a resumption needs: ``(batch, next stage, state)``."""
        return self.batch, self.stage, self.state


def split_outputs(rows_out: Sequence[Inputs], counts: Sequence[int]) -> list[Inputs]:
    """Group per-row outputs back into per-request outputs (rows concatenated in order)."""
    out, i = [], 0
    for k in counts:
        part = rows_out[i : i + k]
        i += k
        if k == 1:
            out.append(dict(part[0]))
        else:
            out.append({name: np.concatenate([p[name] for p in part]) for name in part[0]})
    return out


def split_rows(inputs: Inputs) -> list[Inputs]:
    """One request's tensors (batch dimension N) as N single-row requests."""
    n = int(next(iter(inputs.values())).shape[0])
    if n == 1:
        return [inputs]
    return [{k: v[i : i + 1] for k, v in inputs.items()} for i in range(n)]
