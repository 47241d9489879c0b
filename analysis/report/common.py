"""Helpers the report's sections share: the profile, a figure canvas, error and spread lines."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from servelab.analysis.report.section import Context
from servelab.core.profile import Profile


def profile_of(ctx: Context) -> Profile:
    """The context's profile, or the design-doc default where there is none."""
    from servelab.core.profile import default_profile, load_profile

    return load_profile(ctx.profile) if ctx.profile is not None else default_profile()


def profile_flag(ctx: Context) -> str:
    """``--profile P`` for a reproduce line (empty without a profile)."""
    return f" --profile {ctx.profile}" if ctx.profile is not None else ""


def profile_note(ctx: Context) -> str | None:
    if ctx.profile is None:
        return ("No calibrated profile: the simulated halves use the design-doc default "
                "profile, not this machine (make one with `servelab calibrate --quick`).")
    return None


@contextmanager
def canvas(path: Path, nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (10, 4),
           **kw: Any) -> Iterator[tuple[Any, Any]]:
    """A matplotlib figure (Agg) whose axes grid is yielded, saved to ``path`` and closed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=size, squeeze=False, **kw)
    try:
        yield fig, axes
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)


def rel_errors(sim: Sequence[float], live: Sequence[float]) -> np.ndarray:
    s, v = np.asarray(sim, dtype=float), np.asarray(live, dtype=float)
    ok = np.isfinite(s) & np.isfinite(v) & (v > 0)
    return np.abs(s[ok] / v[ok] - 1.0)


def fidelity_line(what: str, sim: Sequence[float], live: Sequence[float]) -> str | None:
    """``"sim vs live <what>: median |error| 18% (max 40%) over 12 points"``, None without
    pairs."""
    err = rel_errors(sim, live)
    if err.size == 0:
        return None
    return (f"sim vs live {what}: median |error| {np.median(err):.0%} (max {err.max():.0%}) "
            f"over {err.size} point{'s' if err.size != 1 else ''}")


def pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.0%}"


def ms(x_s: float) -> str:
    return "n/a" if not math.isfinite(x_s) else f"{x_s * 1e3:.0f} ms"
