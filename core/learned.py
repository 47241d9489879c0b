"""The learned runtime predictor (inference side): a fitted regressor behind the
:class:`~servelab.core.predictor.RuntimePredictor` interface, so SJF can use it live and in
simulation, and its file format (:func:`save`, :func:`load`: what a server needs to use a
trained one).  Training lives in :mod:`servelab.analysis.predictor`.

Features describe the request (model, input size, batch size), the moment (queue length at
arrival, CPU utilisation, hour of day) and the server configuration (concurrency model, workers,
intra-op threads).  The regressor predicts log service time, so its squared error is close to a
relative error — what MAPE measures.

A single-row ``predict`` of a scikit-learn gradient-boosting model costs about half a
millisecond, too slow for the live path.  So the predictor works from tables: for each context
(batch size, queue length bucketed by powers of two, CPU utilisation by tenths, configuration) it
predicts, in one vectorised call, every model at every size of a grid — every input size seen in
training plus a geometric grid in 2% steps — and a request's prediction is a table look-up at
its nearest grid size.  Evaluation uses the same grid, so reported errors include the
quantisation.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from servelab.core.config import ServerConfig
from servelab.core.requests import Request

FEATURES: tuple[str, ...] = (
    "model", "input_size", "batch_size", "queue_len", "cpu_util",
    "concurrency", "workers", "intra_op_threads", "hour",
)
CATEGORICAL: tuple[str, ...] = ("model", "concurrency")
CONCURRENCY_CODES = {"threads": 0, "processes": 1, "async": 2}
CPU_TENTHS: tuple[float, ...] = tuple(k / 10 for k in range(11))


class Regressor(Protocol):
    def predict(self, X: Any) -> Any: ...


@dataclass
class Context:
    """What the executor knows beyond the request: its configuration and current state."""

    concurrency: str = "threads"
    workers: int = 1
    intra_op_threads: int = 1
    cpu_util: float = 0.0
    hour: int = 12

    @classmethod
    def for_config(cls, config: ServerConfig, cpu_util: float = 0.0, hour: int = 12) -> Context:
        """The context of a server configuration (concurrency, workers, intra-op threads)."""
        return cls(config.concurrency, config.workers, config.intra_op_threads, cpu_util, hour)


def bucket_queue(q: float) -> int:
    """Queue length bucketed by powers of two (0, 1, 2-3, 4-7, ...), as the cache key uses it."""
    return 0 if q <= 0 else int(math.log2(q)) + 1


def encode(
    models: Sequence[str], model: str, input_size: float, batch_size: float, queue_len: float,
    cpu_util: float, concurrency: str, workers: float, intra_op_threads: float, hour: float,
) -> tuple[float, ...]:
    """One feature row in :data:`FEATURES` order (categories as integer codes)."""
    try:
        m = models.index(model)
    except ValueError:
        m = -1  # unseen model: the regressor's "missing" branch
    return (
        float(m), float(input_size), float(max(batch_size, 1)), float(bucket_queue(queue_len)),
        round(float(cpu_util), 1), float(CONCURRENCY_CODES.get(concurrency, -1)),
        float(workers), float(intra_op_threads), float(hour),
    )


def size_grid(max_size: int = 8192, step: float = 1.02) -> np.ndarray:
    """Geometric grid of input sizes (1, 2, ..., then 2% apart) used for prediction tables."""
    k = np.arange(int(math.log(max_size) / math.log(step)) + 2)
    return np.unique(np.rint(step**k)).astype(float)


def snap(grid: Sequence[float], size: float) -> float:
    """The value of sorted ``grid`` nearest to ``size`` (in ratio)."""
    i = bisect.bisect_left(grid, size)
    if i == 0:
        return grid[0]
    if i >= len(grid):
        return grid[-1]
    lo, hi = grid[i - 1], grid[i]
    return lo if size / lo <= hi / size else hi


class LearnedPredictor:
    """SJF's learned predictor: ``predict(request)`` in seconds, memoised."""

    name = "learned"

    def __init__(
        self, regressor: Regressor, models: Sequence[str], context: Context | None = None,
        metadata: Mapping[str, Any] | None = None, sizes: Sequence[float] = (),
    ):
        self.regressor = regressor
        self.models = list(models)
        self.sizes = sorted({float(x) for x in sizes})
        self.grid = np.union1d(size_grid(), np.asarray(self.sizes, dtype=float))
        self._grid_list = self.grid.tolist()
        self.context = context if context is not None else Context()
        self.metadata = dict(metadata or {})
        self._tables: dict[tuple[float, ...], dict[tuple[float, float], float]] = {}

    def features(self, request: Request) -> tuple[float, ...]:
        c = self.context
        return encode(
            self.models, request.model, request.input_size, request.batch_size or 1,
            max(request.queue_len_at_arrival, 0), c.cpu_util, c.concurrency, c.workers,
            c.intra_op_threads, c.hour,
        )

    def _table(self, context: tuple[float, ...]) -> dict[tuple[float, float], float]:
        n_models = max(len(self.models), 1)
        m = np.repeat(np.arange(n_models, dtype=float), self.grid.size)
        sizes = np.tile(self.grid, n_models)
        rows = np.column_stack([m, sizes, np.tile(np.asarray(context), (m.size, 1))])
        pred = np.exp(self.regressor.predict(rows))
        table = dict(zip(zip(m.tolist(), sizes.tolist(), strict=True), pred.tolist(), strict=True))
        self._tables[context] = table
        return table

    def warm(
        self, queue_lens: Sequence[int] = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
        cpu_utils: Sequence[float] = CPU_TENTHS,
        batch_sizes: Sequence[int] = (1,),
    ) -> int:
        """Build the tables of every (batch size, queue bucket, CPU tenth) context of the
        current configuration now, so that no request pays for a table on the live path.
        Returns how many tables were built."""
        c, built = self.context, 0
        for b in batch_sizes:
            for q in queue_lens:
                for u in cpu_utils:
                    key = encode(self.models, "", 0, b, q, u, c.concurrency, c.workers,
                                 c.intra_op_threads, c.hour)[2:]
                    if key not in self._tables:
                        self._table(key)
                        built += 1
        return built

    def predict(self, request: Request) -> float:
        row = self.features(request)
        table = self._tables.get(row[2:]) or self._table(row[2:])
        hit = table.get((row[0], snap(self._grid_list, row[1])))
        if hit is None:  # a model unseen in training: ask the regressor directly
            hit = float(np.exp(self.regressor.predict(np.asarray([row]))[0]))
        return hit

    def predict_rows(self, rows: np.ndarray) -> np.ndarray:
        """Vectorised prediction for an (n, len(FEATURES)) array of encoded rows, with input
        sizes snapped to the grid exactly as :meth:`predict` does."""
        rows = np.array(rows, dtype=float)
        grid = self.grid
        idx = np.clip(np.searchsorted(grid, rows[:, 1]), 1, grid.size - 1)
        lo, hi = grid[idx - 1], grid[idx]
        rows[:, 1] = np.where(rows[:, 1] / lo <= hi / rows[:, 1], lo, hi)
        return np.exp(self.regressor.predict(rows))

    def observe(self, request: Request, runtime: float) -> None:
        return None  # trained offline; online updates are not modelled


def save(predictor: LearnedPredictor, path: str | Path) -> None:
    """Save a trained predictor (joblib: a pickle, read back by :func:`load`)."""
    import joblib

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump({"regressor": predictor.regressor, "models": predictor.models,
                 "metadata": predictor.metadata, "sizes": predictor.sizes}, path)


def load(path: str | Path, context: Context | None = None) -> LearnedPredictor:
    """Load a predictor this tool saved (a local file you trust: joblib unpickles it)."""
    if not Path(path).exists():
        raise FileNotFoundError(f"predictor file not found: {path}")
    import joblib

    obj = joblib.load(path)
    return LearnedPredictor(
        obj["regressor"], obj["models"], context, obj["metadata"], obj.get("sizes", ())
    )
