"""The capacity ladder moved to :mod:`servelab.loadgen.ladder` (the live-measurement toolkit,
below the servers' benchmark); the names ``servelab validate`` uses stay importable from here
until it imports them from there."""

from servelab.loadgen.ladder import DEFAULT_RULES, Step, climb, step_from_summary

__all__ = ["DEFAULT_RULES", "Step", "climb", "step_from_summary"]
