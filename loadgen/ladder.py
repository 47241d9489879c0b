"""Capacity ladders: the highest rate a server sustains, found by stepping the rate.

The ladder knows nothing about load generators or simulators: it calls ``measure(rate) ->
Step`` and applies *stop rules* — functions ``Step -> reason | None`` — to each step.  Going up
(``up`` x a step) it stops at the first step a rule fires on; if that happens before any step
passed (the start was past capacity) it steps down to just below the completion rate seen and
then bisects, so the ladder ends with a passing rate and a failing one close together.  A
failing step can be measured again (``retry``: on a shared machine one bad step may be a
hiccup) before it counts, and the bisection can be capped (``bisect``).

Two capacities come back: :attr:`Ladder.capacity`, the highest completion rate seen (under an
open-loop overload the completion rate is the server's capacity), and :attr:`Ladder.best`, the
passing step at the highest rate (a sustainable operating point: its latency is within the
rules).

One ladder for every live measurement: ``servelab crosscheck`` (x1.6 steps), ``servelab
sched-study``'s phase 1 (x1.3, stopping at the first failing step), ``servelab bench serve``
(growth, one retry, two bisections, an SLO rule) and ``servelab validate``, whose simulated
ladder (the live ladder's first guess) runs it on the simulator.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    """One rung: the intended rate, what the run's own summary counted, and anything extra."""

    rate: float
    offered: float
    throughput: float
    not_sent: float = 0.0
    """Share of the scheduled requests the load generator never sent (it fell behind)."""
    failed: float = 0.0
    """Share of the requests rejected, timed out or failed."""
    p99: float = math.nan
    """p99 latency of the answered requests, seconds (NaN: not measured)."""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {"rate": self.rate, "offered": self.offered, "throughput": self.throughput,
                "not_sent": self.not_sent, "failed": self.failed, "p99": self.p99, **self.extra}


StopRule = Callable[[Step], "str | None"]
"""A reason to stop climbing at this step, or None to go on."""


def saturated(share: float = 0.9) -> StopRule:
    """Completions below ``share`` of the offered rate."""

    def rule(s: Step) -> str | None:
        if s.throughput < share * s.offered:
            return f"saturated at {s.rate:.1f} req/s offered ({s.throughput:.1f} completed)"
        return None

    return rule


def generator_behind(limit: float = 0.02) -> StopRule:
    """The load generator (on the same cores as the server) could not send its schedule."""

    def rule(s: Step) -> str | None:
        if s.not_sent > limit:
            return f"load generator fell behind at {s.rate:.1f} req/s ({s.not_sent:.0%} not sent)"
        return None

    return rule


def failing(limit: float = 0.01) -> StopRule:
    """More than ``limit`` of the requests rejected or timed out."""

    def rule(s: Step) -> str | None:
        if s.failed > limit:
            return f"{s.failed:.0%} of requests failed at {s.rate:.1f} req/s"
        return None

    return rule


def slow(p99_limit_s: float) -> StopRule:
    """The answered requests' p99 above ``p99_limit_s`` seconds (an SLO); a step without any
    answer fires too."""

    def rule(s: Step) -> str | None:
        if not s.p99 <= p99_limit_s:  # NaN: nothing answered
            return (f"p99 {s.p99 * 1e3:.0f} ms over {p99_limit_s * 1e3:g} ms at {s.rate:.1f} "
                    "req/s")
        return None

    return rule


DEFAULT_RULES: tuple[StopRule, ...] = (generator_behind(), saturated(), failing())


@dataclass(frozen=True)
class Ladder:
    capacity: float
    note: str
    steps: tuple[Step, ...]
    bounded: bool
    """Whether a stop rule fired on some step (else the capacity is only a lower bound)."""
    best: Step | None = None
    """The passing step at the highest rate (None: no step passed)."""
    lowest_failing: float = math.nan
    """The lowest rate a stop rule fired on (after its retries; NaN: none)."""


def climb(
    measure: Callable[[float], Step], start: float, up: float = 1.3, down: float = 0.85,
    max_steps: int = 6, rules: Sequence[StopRule] = DEFAULT_RULES, tight: float = 1.35,
    heavy: float = 2.0, retry: int = 0, bisect: int | None = None,
) -> Ladder:
    """Run the ladder from ``start`` req/s (see the module docstring).

    Below capacity the rate rises ``up`` x a step.  A step a rule fires on is above capacity:
    if no step has passed yet, the next goes to ``down`` x its completion rate; once a passing
    and a failing rate are known, the next step is their geometric mean.  It stops when they
    are within ``tight`` x of each other, or when a failing step's completion rate — trusted as
    the capacity if that step was offered at most ``heavy`` x it (a heavier overload can
    complete less than the capacity in a short window) — is within ``tight`` x of the passing
    rate, or after ``max_steps`` (retries included).  A failing step is measured again up to
    ``retry`` times at the same rate before it counts as failing; ``bisect`` caps the steps
    taken between a passing and a failing rate (0: stop as soon as both are known)."""
    if start <= 0 or up <= 1 or not 0 < down < 1 or max_steps < 1 or tight <= 1:
        raise ValueError("climb needs start > 0, up > 1, 0 < down < 1, tight > 1 and "
                         "max_steps >= 1")
    if retry < 0 or (bisect is not None and bisect < 0):
        raise ValueError("climb needs retry >= 0 and bisect >= 0")
    steps: list[Step] = []
    rate = start
    lo = hi = math.nan  # the highest passing and the lowest failing rate
    best: Step | None = None
    trusted: list[float] = []  # completion rates of moderately overloaded steps
    first_reason = ""
    bisections = tries = 0
    while len(steps) < max_steps:
        s = measure(rate)
        steps.append(s)
        reason = next((r for r in (rule(s) for rule in rules) if r), None)
        log.debug("ladder step %d: %.1f req/s -> %.1f completed (%s)", len(steps) - 1, rate,
                  s.throughput, reason or "ok")
        if reason is not None and tries < retry and len(steps) < max_steps:
            tries += 1
            continue  # measure this rate again before it counts (the last step counts as is)
        tries = 0
        if reason is None:
            lo = rate if math.isnan(lo) else max(lo, rate)
            if best is None or rate >= best.rate:
                best = s
        else:
            hi = rate if math.isnan(hi) else min(hi, rate)
            first_reason = first_reason or reason
            if rate <= heavy * s.throughput:
                trusted.append(s.throughput)
        if not (math.isnan(lo) or math.isnan(hi)) and (
                hi / lo <= tight or any(t <= tight * lo for t in trusted)
                or (bisect is not None and bisections >= bisect)):
            break
        if math.isnan(hi):
            rate = lo * up
        elif math.isnan(lo):
            rate = down * min(rate, max(s.throughput, 1e-3))
        else:
            rate = math.sqrt(lo * hi)
            bisections += 1
    if math.isnan(hi):
        note = f"not saturated up to {lo:.1f} req/s"
    elif math.isnan(lo):
        note = f"{first_reason}; still saturated at {steps[-1].rate:.1f} req/s"
    else:
        note = f"{first_reason}; unsaturated at {lo:.1f} req/s"
    capacity = max(s.throughput for s in steps)
    return Ladder(capacity, note, tuple(steps), not math.isnan(hi), best, hi)


def step_from_summary(rate: float, summary: Mapping[str, Any]) -> Step:
    """A :class:`Step` from one run's :class:`servelab.summary.Summary` (its dict form; live or
    simulated: the same function summarizes both)."""
    counts = summary["status"]
    n = max(int(summary["requests"]), 1)
    failed = sum(int(counts.get(k, 0)) for k in ("rejected", "timeout", "error"))
    return Step(rate=rate, offered=float(summary["offered_rate"]),
                throughput=float(summary["throughput"]), not_sent=int(counts.get("not_sent", 0)) / n,
                failed=failed / n)
