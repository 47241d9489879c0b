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
