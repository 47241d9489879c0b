"""The offline WordPiece vocabulary and tokenizer: layout, sub-words, truncation, training."""

from __future__ import annotations

import numpy as np
import pytest

from servelab.servers.zoo import get_model, reviews, wordpiece


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return wordpiece.load_tokenizer()


def test_shipped_vocab_layout() -> None:
    tokens = wordpiece.VOCAB_FILE.read_text(encoding="utf-8").splitlines()
    assert tuple(tokens[:5]) == wordpiece.SPECIAL_TOKENS and tokens[wordpiece.PAD_ID] == "[PAD]"
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
    long = reviews.review_text(2000, np.random.default_rng(0))
    enc = tokenizer.encode(long)
    assert len(enc.ids) == 512 and enc.tokens[-1] == "[SEP]"
    model = get_model("distilbert", variant="tiny")
    short = model.make_input(10, np.random.default_rng(1))
    batch = model.preprocess([{"text": np.array([long], dtype=object)}, short])
    assert tuple(batch.input_ids.shape) == (2, 512)
    n_short = int(batch.attention_mask[1].sum())
    assert n_short < 30
    assert (batch.input_ids[1, n_short:] == wordpiece.PAD_ID).all()
    assert batch.attention_mask[0].all()


def test_ascii_word_split_is_the_bert_pipeline() -> None:
    """word_counts splits printable ASCII itself: exactly BertNormalizer + BertPreTokenizer."""
    import random
    import string
    from collections import Counter

    from tokenizers import Tokenizer, models

    pipe = wordpiece._pipeline(Tokenizer(models.WordPiece(unk_token="[UNK]")))

    def bert(s: str) -> list[str]:
        return [w for w, _ in pipe.pre_tokenizer.pre_tokenize_str(pipe.normalizer.normalize_str(s))]

    rnd = random.Random(0)
    printable = string.ascii_letters + string.digits + string.punctuation + " "
    samples = ["".join(rnd.choice(printable) for _ in range(rnd.randint(0, 40)))
               for _ in range(3000)]
    samples += list(reviews.corpus(200))
    for s in samples:
        assert wordpiece._ASCII_WORDS.findall(s.lower()) == bert(s), s
    others = ["Déjà vu\tagain", "naïve café", "line\nbreak"]  # through tokenizers itself
    assert wordpiece.word_counts(iter(samples + others)) == Counter(w for s in samples + others
                                                               for w in bert(s))


def test_vocab_training_is_deterministic(tmp_path) -> None:  # type: ignore[no-untyped-def]
    a = wordpiece.train_vocab(vocab_size=600, n_reviews=300)
    assert a == wordpiece.train_vocab(vocab_size=600, n_reviews=300)
    assert tuple(a[:5]) == wordpiece.SPECIAL_TOKENS and len(a) <= 600
    path = wordpiece.build_vocab(tmp_path / "vocab.txt", vocab_size=600, n_reviews=300)
    assert path.read_text(encoding="utf-8").splitlines() == a
    tok = wordpiece.load_tokenizer(path)
    assert "[UNK]" not in tok.encode("an utterly unwatchable remake").tokens


@pytest.mark.slow
def test_shipped_vocab_is_reproducible() -> None:
    """The committed vocabulary file is exactly what build_vocab() makes (about 4 s)."""
    assert wordpiece.train_vocab() == wordpiece.VOCAB_FILE.read_text(encoding="utf-8").splitlines()
