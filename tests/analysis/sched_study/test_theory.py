"""The theory check: Phipps on an empirical sample matches the exponential closed form, and the
simulated FIFO and SJF mean waits on the mixed distribution agree with P-K and Phipps."""

from __future__ import annotations

import numpy as np
import pytest

from servelab.analysis.sched_study.theory import phipps_wait_mean, theory_check
from servelab.core.profile import default_profile
from servelab.sim import theory


def test_phipps_empirical_matches_the_exponential_closed_form():
    s = np.random.default_rng(0).exponential(1.0, 400_000)
    for rho in (0.5, 0.8):
        assert phipps_wait_mean(rho, s) == pytest.approx(
            theory.sjf_wait_mean_exponential(rho, 1.0), rel=0.02)


def test_theory_check_on_the_mixed_distribution(mixed):
    rows = theory_check(default_profile(), mixed, rhos=(0.5, 0.8), requests=60_000, seed=0)
    assert [(r.policy, r.rho) for r in rows] == [
        ("fifo", 0.5), ("sjf-oracle", 0.5), ("fifo", 0.8), ("sjf-oracle", 0.8)]
    for r in rows:
        assert r.halfwidth_s <= 0.25 * r.theory_s, r  # the interval is informative
        assert r.agrees, r  # within 5% of theory, or theory inside the 95% interval
    by = {(r.policy, r.rho): r for r in rows}
    for rho in (0.5, 0.8):  # SJF's gain on this distribution, in theory and in simulation
        assert by["sjf-oracle", rho].theory_s < 0.8 * by["fifo", rho].theory_s
        assert by["sjf-oracle", rho].sim_s < 0.8 * by["fifo", rho].sim_s
