"""Queueing-theory results the simulator is checked against (and that sweeps can quote).

Notation: arrival rate ``lam``, service rate ``mu = 1 / E[S]``, ``c`` servers, load
``rho = lam E[S] / c``.  Waiting time ``W`` is the time in queue before service starts;
sojourn time ``T = W + S``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from scipy import integrate, stats


def erlang_c(c: int, a: float) -> float:
    """Probability that an arrival waits in M/M/c with offered load ``a = lam / mu`` (< c)."""
    if not 0 <= a < c:
        raise ValueError(f"Erlang C needs 0 <= a < c, got a={a}, c={c}")
    # Numerically stable: Erlang B by recursion, then C from B.
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    rho = a / c
    return b / (1 - rho + rho * b)


def mmc_wait_mean(lam: float, mu: float, c: int) -> float:
    """Mean waiting time in M/M/c."""
    return erlang_c(c, lam / mu) / (c * mu - lam)


def mmc_wait_quantile(lam: float, mu: float, c: int, q: float) -> float:
    """The ``q`` quantile of the waiting time in M/M/c: ``P(W > t) = C exp(-(c mu - lam) t)``."""
    pc = erlang_c(c, lam / mu)
    tail = 1 - q
    return 0.0 if pc <= tail else math.log(pc / tail) / (c * mu - lam)


def pk_wait_mean(lam: float, es: float, es2: float) -> float:
    """Pollaczek–Khinchine: mean waiting time in M/G/1, ``lam E[S^2] / (2 (1 - rho))``."""
    rho = lam * es
    if rho >= 1:
        raise ValueError(f"M/G/1 is unstable at rho={rho}")
    return lam * es2 / (2 * (1 - rho))


def cobham_waits(lams: Sequence[float], es: Sequence[float], es2: Sequence[float]) -> list[float]:
    """Cobham: mean wait of each class in an M/G/1 non-preemptive priority queue (class 0 first).

    ``W_k = W0 / ((1 - sigma_{k-1}) (1 - sigma_k))`` with ``W0 = sum_i lam_i E[S_i^2] / 2`` and
    ``sigma_k`` the load of classes 0..k.
    """
    w0 = sum(lam * m2 for lam, m2 in zip(lams, es2, strict=True)) / 2
    out, sigma = [], 0.0
    for lam, m in zip(lams, es, strict=True):
        prev, sigma = sigma, sigma + lam * m
        out.append(w0 / ((1 - prev) * (1 - sigma)))
    return out


def sjf_wait_mean(
    lam: float, pdf: Callable[[float], float], es2: float, upper: float = math.inf
) -> float:
    """Phipps: mean waiting time in M/G/1 under non-preemptive shortest-job-first with exactly
    known service times (density ``pdf`` on ``(0, upper)``).

    A job of size ``x`` waits ``W(x) = W0 / (1 - rho(x))^2`` on average, where
    ``W0 = lam E[S^2] / 2`` and ``rho(x) = lam * integral_0^x t dB(t)``; the mean is
    ``integral W(x) dB(x)``.
    """
    w0 = lam * es2 / 2

    def rho_x(x: float) -> float:
        return lam * integrate.quad(lambda t: t * pdf(t), 0, x, limit=200)[0]

    def w(x: float) -> float:
        return w0 / (1 - rho_x(x)) ** 2 * pdf(x)

    return float(integrate.quad(w, 0, upper, limit=200)[0])


def sjf_wait_mean_exponential(lam: float, mu: float) -> float:
    """Phipps' formula for exponential service (closed-form ``rho(x)``)."""
    w0 = lam * 2 / mu**2 / 2

    def w(x: float) -> float:
        rho_x = lam / mu * (1 - math.exp(-mu * x) * (1 + mu * x))
        return w0 / (1 - rho_x) ** 2 * mu * math.exp(-mu * x)

    return float(integrate.quad(w, 0, math.inf, limit=200)[0])


def ps_sojourn_mean(lam: float, es: float) -> float:
    """M/G/1 processor sharing: ``E[T] = E[S] / (1 - rho)`` (insensitive to the distribution)."""
    rho = lam * es
    if rho >= 1:
        raise ValueError(f"M/G/1-PS is unstable at rho={rho}")
    return es / (1 - rho)


def second_moment(mean: float, dist: str, cv: float) -> float:
    """``E[S^2]`` of a service time with the given mean and noise shape (see sim.service)."""
    if dist == "deterministic":
        return mean**2
    if dist == "exponential":
        return 2 * mean**2
    return mean**2 * (1 + cv**2)


def t_quantile(df: int, level: float = 0.95) -> float:
    """Two-sided Student-t critical value."""
    return float(stats.t.ppf(0.5 + level / 2, df))
