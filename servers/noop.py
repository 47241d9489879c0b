"""A no-op model: echoes its input.  It measures what a server costs per request when the model
costs nothing (HTTP parsing, routing, codec, queueing, thread hand-offs, IPC).

It lives here rather than in the zoo registry because it is a measuring stick for the servers,
not a model of the study; :func:`servelab.servers.models.get_servable` knows its name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from servelab.servers.zoo.base import Inputs, TensorSpec, ZooModel

NOOP_NAME = "noop"


class NoopModel(ZooModel):
    """``input`` FP32 (N, K) -> ``output``: the same values.  One identity stage."""

    name = NOOP_NAME
    inputs = (TensorSpec("input", "FP32", (-1, -1)),)
    outputs = (TensorSpec("output", "FP32", (-1, -1)),)
    size_unit = "values"
    default_size = 16

    def build(self) -> Any:
        from torch import nn

        return nn.Identity()

    def make_input(self, size: int | None, rng: np.random.Generator) -> Inputs:
        k = self.default_size if size is None else size
        return {"input": rng.random((1, k), dtype=np.float32)}

    def input_size(self, inputs: Inputs) -> int:
        return int(np.asarray(inputs["input"]).shape[-1])

    def preprocess(self, inputs: Sequence[Inputs]) -> list[np.ndarray]:
        return [np.asarray(r["input"], dtype=np.float32) for r in inputs]

    def stages(self, batch: Any) -> list[Callable[[Any], Any]]:
        return [lambda rows: rows]

    def forward_unstaged(self, batch: Any) -> Any:
        return batch

    def postprocess(self, output: Any, n: int) -> list[Inputs]:
        if len(output) != n:
            raise ValueError(f"output has {len(output)} rows for {n} requests")
        return [{"output": row} for row in output]


SLEEP_NAME = "sleep"


class SleepModel(ZooModel):
    """``seconds`` FP32 (N, 1) -> ``seconds``: sleeps that long (the batch: its longest row),
    in ``STAGES`` equal stages.  A service time the tests and benchmarks control exactly;
    ``time.sleep`` releases the GIL, like a large kernel would (and blocks an event loop, like
    inline inference does)."""

    name = SLEEP_NAME
    inputs = (TensorSpec("seconds", "FP32", (-1, 1)),)
    outputs = (TensorSpec("seconds", "FP32", (-1, 1)),)
    size_unit = "milliseconds"
    default_size = 10
    STAGES = 4
    MAX_SECONDS = 60.0

    def build(self) -> Any:
        from torch import nn

        return nn.Identity()

    def load(self) -> Any:
        self._module: Any = self._module or object()
        return self._module

    def make_input(self, size: int | None, rng: np.random.Generator) -> Inputs:
        ms = self.default_size if size is None else size
        return {"seconds": np.array([[ms / 1000.0]], dtype=np.float32)}

    def input_size(self, inputs: Inputs) -> int:
        return int(round(float(np.asarray(inputs["seconds"]).reshape(-1)[0]) * 1000))

    def preprocess(self, inputs: Sequence[Inputs]) -> np.ndarray:
        rows = np.concatenate([np.asarray(r["seconds"], dtype=np.float32).reshape(1, 1)
                               for r in inputs])
        if not np.all(np.isfinite(rows)) or rows.min() < 0 or rows.max() > self.MAX_SECONDS:
            raise ValueError(f"seconds must be within 0..{self.MAX_SECONDS}")
        return rows

    def stages(self, batch: Any) -> list[Callable[[Any], Any]]:
        import time

        step = float(batch.max()) / self.STAGES

        def nap(rows: np.ndarray) -> np.ndarray:
            time.sleep(step)
            return rows

        return [nap] * self.STAGES

    def forward_unstaged(self, batch: Any) -> Any:
        return batch

    def postprocess(self, output: Any, n: int) -> list[Inputs]:
        if len(output) != n:
            raise ValueError(f"output has {len(output)} rows for {n} requests")
        return [{"seconds": output[i : i + 1]} for i in range(n)]
