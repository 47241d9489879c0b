"""A debug-only model that deadlocks on purpose: the watchdog's test fixture and the OS study's
deadlock scenario.  Never part of the zoo or of ``servable_names()``; served only when named
(``servelab serve --concurrency threads --workers 2 --models deadlock``).

``order`` FP32 (N, 1): a request with order 0 takes lock ``deadlock-A`` then ``deadlock-B``,
order 1 takes ``deadlock-B`` then ``deadlock-A``, holding the first for ``HOLD_S`` before it asks
for the second.  Two such requests of opposite order running at once on two inference threads
(``--workers 2``) deadlock: each holds the lock the other waits for.  Alone, a request just
takes both locks and echoes its input.  The locks are :class:`~servelab.servers.locks.TrackedLock`
per model instance; a stuck wait gives up after ``GIVE_UP_S`` (so test processes do not keep
blocked threads for ever) and the request is then answered as a model failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from servelab.servers.locks import TrackedLock
from servelab.servers.zoo.base import Inputs, TensorSpec, ZooModel

DEADLOCK_NAME = "deadlock"


class DeadlockModel(ZooModel):
    name = DEADLOCK_NAME
    inputs = (TensorSpec("order", "FP32", (-1, 1)),)
    outputs = (TensorSpec("order", "FP32", (-1, 1)),)
    size_unit = "order"
    default_size = 0
    HOLD_S = 0.2
    GIVE_UP_S = 600.0

    def __init__(self, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        self.lock_a = TrackedLock("deadlock-A")
        self.lock_b = TrackedLock("deadlock-B")

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        del state["lock_a"], state["lock_b"]  # a process worker gets locks of its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.lock_a = TrackedLock("deadlock-A")
        self.lock_b = TrackedLock("deadlock-B")

    def build(self) -> Any:
        return None

    def load(self) -> Any:
        self._module: Any = self._module or object()
        return self._module

    def make_input(self, size: int | None, rng: np.random.Generator) -> Inputs:
        return {"order": np.array([[float(size or 0)]], dtype=np.float32)}

    def input_size(self, inputs: Inputs) -> int:
        return int(float(np.asarray(inputs["order"]).reshape(-1)[0]))

    def preprocess(self, inputs: Sequence[Inputs]) -> np.ndarray:
        rows = np.concatenate([np.asarray(r["order"], dtype=np.float32).reshape(1, 1)
                               for r in inputs])
        if not np.all(np.isin(rows, (0.0, 1.0))):
            raise ValueError("order must be 0 (A then B) or 1 (B then A)")
        return rows

    def stages(self, batch: Any) -> list[Callable[[Any], Any]]:
        first, second = ((self.lock_a, self.lock_b) if float(batch[0, 0]) == 0.0
                         else (self.lock_b, self.lock_a))

        def both(rows: np.ndarray) -> np.ndarray:
            with first:
                time.sleep(self.HOLD_S)
                if not second.acquire(timeout=self.GIVE_UP_S):
                    raise RuntimeError(f"gave up waiting for {second.name} after "
                                       f"{self.GIVE_UP_S:g} s")
                second.release()
            return rows

        return [both]

    def forward_unstaged(self, batch: Any) -> Any:
        return batch

    def postprocess(self, output: Any, n: int) -> list[Inputs]:
        return [{"order": output[i : i + 1]} for i in range(n)]
