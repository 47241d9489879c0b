"""The synthetic review generator: seeded, exact word counts, inflections, its draws NumPy's."""

from __future__ import annotations

import numpy as np
import pytest

from servelab.servers.zoo import reviews, wordpiece
from servelab.servers.zoo.pcg64_draws import NumpyDraws


def test_review_text_words_and_tokens() -> None:
    tokenizer = wordpiece.load_tokenizer()
    rng = np.random.default_rng(0)
    for n in (1, 16, 128):
        t = reviews.review_text(n, rng)
        assert len(t.split()) == n
        n_tokens = len(tokenizer.encode(t).ids) - 2
        assert n <= n_tokens <= 1.35 * n + 2  # words plus punctuation
    with pytest.raises(ValueError):
        reviews.review_text(0, rng)


def test_review_generator_is_seeded() -> None:
    a = reviews.review(np.random.default_rng(3))
    assert a == reviews.review(np.random.default_rng(3))
    assert a != reviews.review(np.random.default_rng(4))


def test_review_over_replayed_draws_is_numpys() -> None:
    """A review drawn through the replayed PCG64 draws equals one drawn through NumPy's own
    calls, and leaves the generator where those calls would (also with half a 32-bit word
    buffered before)."""
    for seed in range(40):
        ours, numpys = np.random.default_rng(seed), np.random.default_rng(seed)
        if seed % 2:
            ours.integers(5), numpys.integers(5)  # a half word left in the 32-bit buffer
        assert reviews.review(ours) == reviews._review(NumpyDraws(numpys))
        assert ours.bit_generator.state == numpys.bit_generator.state
        assert ours.integers(1000) == numpys.integers(1000) and ours.random() == numpys.random()


def test_inflections() -> None:
    assert [reviews.past(v) for v in ("love", "carry", "watch", "see")] == [
        "loved",
        "carried",
        "watched",
        "saw",
    ]
    assert [reviews.gerund(v) for v in ("love", "die", "run", "watch")] == [
        "loving",
        "dying",
        "running",
        "watching",
    ]
    assert [reviews.plural(n) for n in ("movie", "city", "witch", "child")] == [
        "movies",
        "cities",
        "witches",
        "children",
    ]
