"""Confidence intervals for simulation output: batch means over one long run.

Consecutive waiting times of a queue are strongly correlated, so the i.i.d. standard error
would be far too small.  Batch means cut the (warm-up-trimmed) series into ``batches``
contiguous blocks; when each block is much longer than the queue's relaxation time the block
statistics are nearly independent, and a Student-t interval over them is honest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from servelab.sim.theory import t_quantile


@dataclass(frozen=True)
class Estimate:
    """A point estimate with the half-width of its confidence interval."""

    value: float
    halfwidth: float
    level: float = 0.95

    def covers(self, truth: float) -> bool:
        return abs(self.value - truth) <= self.halfwidth

    def agrees(self, truth: float, rel_tol: float = 0.03) -> bool:
        """Within ``rel_tol`` of ``truth``, or ``truth`` inside the confidence interval."""
        return abs(self.value - truth) <= max(rel_tol * abs(truth), self.halfwidth)

    def __str__(self) -> str:
        return f"{self.value:.4g} ± {self.halfwidth:.2g}"


def _blocks(x: np.ndarray, batches: int, warmup: float) -> list[np.ndarray]:
    x = np.asarray(x, dtype=float)
    x = x[int(len(x) * warmup):]
    if len(x) < batches * 10:
        raise ValueError(f"too few observations ({len(x)}) for {batches} batches")
    return np.array_split(x, batches)


def batch_means(
    x: np.ndarray, batches: int = 30, level: float = 0.95, warmup: float = 0.05
) -> Estimate:
    """Mean of ``x`` (in time order) with a batch-means confidence interval; the first
    ``warmup`` fraction is dropped."""
    blocks = _blocks(x, batches, warmup)
    means = np.array([b.mean() for b in blocks])
    hw = t_quantile(batches - 1, level) * means.std(ddof=1) / math.sqrt(batches)
    return Estimate(float(np.concatenate(blocks).mean()), float(hw), level)


def batch_quantile(
    x: np.ndarray, q: float, batches: int = 30, level: float = 0.95, warmup: float = 0.05
) -> Estimate:
    """The ``q`` quantile of ``x`` (whole trimmed series) with a confidence interval from the
    spread of the per-batch quantiles."""
    blocks = _blocks(x, batches, warmup)
    per = np.array([np.quantile(b, q) for b in blocks])
    hw = t_quantile(batches - 1, level) * per.std(ddof=1) / math.sqrt(batches)
    return Estimate(float(np.quantile(np.concatenate(blocks), q)), float(hw), level)
