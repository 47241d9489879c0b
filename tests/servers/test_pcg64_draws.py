"""The fast draws of a NumPy generator: NumPy's own values, the generator left where NumPy leaves it."""

from __future__ import annotations

import numpy as np

from servelab.servers.zoo.pcg64_draws import NumpyDraws, Pcg64Draws, draws_for


def test_pcg64_draws_are_numpys() -> None:
    """Pcg64Draws replays a PCG64 generator's random() and integers(n) from its raw output: the
    same values as NumPy's own calls, and the generator left where those calls would leave it
    (also for large n, where Lemire's method rejects)."""
    ours, numpys = np.random.default_rng(7), np.random.default_rng(7)
    draws = Pcg64Draws(ours, block=3)
    for n in [1, 2, 3, 10, 2**31 + 1, 3_000_000_000, 2**32 - 1, 2**32] * 50:
        assert draws.integers(n) == int(numpys.integers(n)), n
        assert draws.random() == numpys.random()
    draws.close()
    assert ours.bit_generator.state == numpys.bit_generator.state


def test_draws_for_picks_the_replay_for_pcg64_only() -> None:
    assert isinstance(draws_for(np.random.default_rng(0)), Pcg64Draws)
    other = np.random.Generator(np.random.MT19937(0))
    assert isinstance(draws_for(other), NumpyDraws)
