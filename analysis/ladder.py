"""The capacity ladder moved to :mod:`servelab.loadgen.ladder` (the live-measurement toolkit,
below the servers' benchmark); these names stay importable from here for ``servelab validate``
until it imports them from there."""

from servelab.loadgen.ladder import (
    DEFAULT_RULES,
    Ladder,
    Step,
    StopRule,
    climb,
    failing,
    generator_behind,
    saturated,
    slow,
    step_from_summary,
)

__all__ = ["DEFAULT_RULES", "Ladder", "Step", "StopRule", "climb", "failing",
           "generator_behind", "saturated", "slow", "step_from_summary"]
