"""The GIL as a shared token, in the fluid limit: how fast each thread of one interpreter runs.

A thread's work alternates between parts that hold the GIL (a fraction ``g`` of it: Python
bytecode, torch's per-op dispatch) and parts that do not (inside kernels that release it).
When the threads of one interpreter together want the token more than it can give, every
GIL-holding part is *stretched* by a common factor ``X >= 1`` (the wait for the token), so a
thread with share ``g`` runs at::

    rate(g) = base / (1 - g + g X)

where ``base`` is the rate the cores alone would give it.  ``X`` is the smallest value at
which the token is not over-subscribed::

    sum_i g_i rate(g_i) <= cap(n),   cap(n) = 1 / (1 + c (n - 1))

``n`` is the number of threads wanting the token and ``c`` the capacity each extra contender
wastes (contended hand-offs: a release/re-acquire becomes a condition-variable wake-up and a
context switch), so two GIL-bound threads together can be *slower* than one — as measured for
MobileNetV2 on this machine.  A thread that waits for the token does not use a core: its CPU
demand is ``demand / (1 - g + g X)`` of what it would be unstretched.

Pure functions, no I/O: the simulator's CPU model and the calibration fit both call them.
"""

from __future__ import annotations

from collections.abc import Sequence


def capacity(contenders: int, overhead: float) -> float:
    """Useful fraction of the token's time with ``contenders`` threads wanting it."""
    return 1.0 / (1.0 + overhead * max(contenders - 1, 0))


def stretch(shares: Sequence[float], base: float, overhead: float) -> float:
    """The common GIL stretch factor ``X`` (>= 1) for threads with ``shares`` at rate ``base``."""
    want = [g for g in shares if g > 0.0]
    if not want or base <= 0.0:
        return 1.0
    cap = capacity(len(want), overhead)
    if base * sum(want) <= cap:
        return 1.0
    # f(X) = sum g base / (1 - g + g X) - cap is decreasing in X: bracket, then bisect.
    lo, hi = 1.0, 2.0
    while _token_load(want, base, hi) > cap:
        lo, hi = hi, hi * 2.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if _token_load(want, base, mid) > cap:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-9 * hi:
            break
    return hi


def _token_load(shares: Sequence[float], base: float, x: float) -> float:
    return sum(g * base / (1.0 - g + g * x) for g in shares)


def rates(shares: Sequence[float], base: float, overhead: float) -> list[float]:
    """Each thread's rate (seconds of its work per second) when they share one GIL."""
    x = stretch(shares, base, overhead)
    return [base / (1.0 - g + g * x) for g in shares]


def pair_rates(
    g_a: float, g_b: float, overhead: float, cores: int = 2
) -> tuple[float, float]:
    """Rates of two threads of one interpreter running side by side on ``cores`` cores
    (what the calibration's co-run benchmark measures)."""
    base = min(1.0, cores / 2.0)
    r = rates([g_a, g_b], base, overhead)
    return r[0], r[1]
