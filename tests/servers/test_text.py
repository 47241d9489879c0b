"""The offline text pipeline: review generator, WordPiece vocabulary and tokenizer."""

from __future__ import annotations

import numpy as np
import pytest

from servelab.servers.zoo import get_model, text


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return text.load_tokenizer()


def test_shipped_vocab_layout() -> None:
    tokens = text.VOCAB_FILE.read_text(encoding="utf-8").splitlines()
    assert tuple(tokens[:5]) == text.SPECIAL_TOKENS and tokens[text.PAD_ID] == "[PAD]"
    assert len(tokens) == len(set(tokens))
    assert len(tokens) < 30522  # ids stay below the model's vocab_size
    for c in "abcxyz09":
        assert c in tokens and "##" + c in tokens


def test_unknown_word_splits_into_subwords(tokenizer) -> None:  # type: ignore[no-untyped-def]
    enc = tokenizer.encode("Transformerification")
    assert enc.tokens[0] == "[CLS]" and enc.tokens[-1] == "[SEP]"
    pieces = enc.tokens[1:-1]
    assert len(pieces) > 1 and all(p.startswith("##") for p in pieces[1:])
    assert "".join(p.removeprefix("##") for p in pieces) == "transformerification"
    assert "[UNK]" not in enc.tokens


def test_known_words_are_single_tokens(tokenizer) -> None:  # type: ignore[no-untyped-def]
    enc = tokenizer.encode("The movie was wonderfully gripping!")
    assert enc.tokens == ["[CLS]", "the", "movie", "was", "wonderfully", "gripping", "!", "[SEP]"]


def test_truncation_at_512(tokenizer) -> None:  # type: ignore[no-untyped-def]
    long = text.review_text(2000, np.random.default_rng(0))
    enc = tokenizer.encode(long)
    assert len(enc.ids) == 512 and enc.tokens[-1] == "[SEP]"
    model = get_model("distilbert", variant="tiny")
    short = model.make_input(10, np.random.default_rng(1))
    batch = model.preprocess([{"text": np.array([long], dtype=object)}, short])
    assert tuple(batch.input_ids.shape) == (2, 512)
    n_short = int(batch.attention_mask[1].sum())
    assert n_short < 30
    assert (batch.input_ids[1, n_short:] == text.PAD_ID).all()
    assert batch.attention_mask[0].all()


def test_review_text_words_and_tokens(tokenizer) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    for n in (1, 16, 128):
        t = text.review_text(n, rng)
        assert len(t.split()) == n
        n_tokens = len(tokenizer.encode(t).ids) - 2
        assert n <= n_tokens <= 1.35 * n + 2  # words plus punctuation
    with pytest.raises(ValueError):
        text.review_text(0, rng)


def test_review_generator_is_seeded() -> None:
    a = text.review(np.random.default_rng(3))
    assert a == text.review(np.random.default_rng(3))
    assert a != text.review(np.random.default_rng(4))


def test_review_draws_are_numpys() -> None:
    """The review generator replays a PCG64 generator's random() and integers(n) from its raw
    output: the same values as NumPy's own calls, and the generator left where those calls
    would leave it (also with half a 32-bit word buffered before, and for large n, where
    Lemire's method rejects)."""
    for seed in range(40):
        ours, numpys = np.random.default_rng(seed), np.random.default_rng(seed)
        if seed % 2:
            ours.integers(5), numpys.integers(5)  # a half word left in the 32-bit buffer
        assert text.review(ours) == text._review(text._Draws(numpys))
        assert ours.bit_generator.state == numpys.bit_generator.state
        assert ours.integers(1000) == numpys.integers(1000) and ours.random() == numpys.random()
    ours, numpys = np.random.default_rng(7), np.random.default_rng(7)
    draws = text._Pcg64Draws(ours, block=3)
    for n in [1, 2, 3, 10, 2**31 + 1, 3_000_000_000, 2**32 - 1, 2**32] * 50:
        assert draws.integers(n) == int(numpys.integers(n)), n
        assert draws.random() == numpys.random()
    draws.close()
    assert ours.bit_generator.state == numpys.bit_generator.state


def test_ascii_word_split_is_the_bert_pipeline() -> None:
    """word_counts splits printable ASCII itself: exactly BertNormalizer + BertPreTokenizer."""
    import random
    import string
    from collections import Counter

    from tokenizers import Tokenizer, models

    pipe = text._pipeline(Tokenizer(models.WordPiece(unk_token="[UNK]")))

    def bert(s: str) -> list[str]:
        return [w for w, _ in pipe.pre_tokenizer.pre_tokenize_str(pipe.normalizer.normalize_str(s))]

    rnd = random.Random(0)
    printable = string.ascii_letters + string.digits + string.punctuation + " "
    samples = ["".join(rnd.choice(printable) for _ in range(rnd.randint(0, 40)))
               for _ in range(3000)]
    samples += list(text.corpus(200))
    for s in samples:
        assert text._ASCII_WORDS.findall(s.lower()) == bert(s), s
    others = ["Déjà vu\tagain", "naïve café", "line\nbreak"]  # through tokenizers itself
    assert text.word_counts(iter(samples + others)) == Counter(w for s in samples + others
                                                               for w in bert(s))


def test_inflections() -> None:
    assert [text.past(v) for v in ("love", "carry", "watch", "see")] == [
        "loved",
        "carried",
        "watched",
        "saw",
    ]
    assert [text.gerund(v) for v in ("love", "die", "run", "watch")] == [
        "loving",
        "dying",
        "running",
        "watching",
    ]
    assert [text.plural(n) for n in ("movie", "city", "witch", "child")] == [
        "movies",
        "cities",
        "witches",
        "children",
    ]


def test_vocab_training_is_deterministic(tmp_path) -> None:  # type: ignore[no-untyped-def]
    a = text.train_vocab(vocab_size=600, n_reviews=300)
    assert a == text.train_vocab(vocab_size=600, n_reviews=300)
    assert tuple(a[:5]) == text.SPECIAL_TOKENS and len(a) <= 600
    path = text.build_vocab(tmp_path / "vocab.txt", vocab_size=600, n_reviews=300)
    assert path.read_text(encoding="utf-8").splitlines() == a
    tok = text.load_tokenizer(path)
    assert "[UNK]" not in tok.encode("an utterly unwatchable remake").tokens


@pytest.mark.slow
def test_shipped_vocab_is_reproducible() -> None:
    """The committed vocabulary file is exactly what build_vocab() makes (about 4 s)."""
    assert text.train_vocab() == text.VOCAB_FILE.read_text(encoding="utf-8").splitlines()
