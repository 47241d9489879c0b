"""The WordPiece vocabulary and tokenizer for DistilBERT, made offline from the review corpus.

No vocabulary can be downloaded on these machines, so one is made here:

* :func:`build_vocab` trains a WordPiece vocabulary on :func:`servelab.servers.zoo.reviews.corpus`
  and writes it to ``servers/data/wordpiece_vocab.txt``, which is committed so it is not rebuilt
  on every run.  The training is ``tokenizers``' ``WordPieceTrainer`` algorithm (BPE merges of
  ``##`` continuation pieces) with a deterministic tie-break, because the library's trainer
  breaks ties in hash-map order and so is not reproducible run to run (see :func:`train_vocab`).
* :func:`load_tokenizer` assembles the BERT-style pipeline around that vocabulary: BertNormalizer
  (lower-casing), BertPreTokenizer, WordPiece with ``##`` continuation pieces, a
  ``[CLS] $A [SEP]`` template and truncation to 512 tokens.  Words outside the vocabulary split
  into ``##`` sub-words, as with the real ``bert-base-uncased`` vocabulary.

Rebuild the vocabulary with ``python -m servelab.servers.zoo.wordpiece``.
"""

from __future__ import annotations

import functools
import heapq
import logging
import os
import re
import string
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from servelab.servers.zoo.reviews import CORPUS_REVIEWS, CORPUS_SEED, corpus

if TYPE_CHECKING:
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

VOCAB_FILE = Path(__file__).resolve().parent.parent / "data" / "wordpiece_vocab.txt"

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
"""Special tokens, in id order: ``[PAD]`` is id 0 (DistilBERT's ``pad_token_id``)."""
PAD_ID = 0
MAX_LENGTH = 512
VOCAB_SIZE = 8000

# Every printable ASCII character gets a word-initial and a ``##`` piece, so no ASCII word maps
# to [UNK].
_ALPHABET = string.ascii_lowercase + string.digits + string.punctuation


def _pipeline(tokenizer: Tokenizer) -> Tokenizer:
    from tokenizers import normalizers, pre_tokenizers

    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tokenizer


_PUNCT = re.escape(string.punctuation)
_ASCII_WORDS = re.compile(rf"[^\s{_PUNCT}]+|[{_PUNCT}]")
"""BertNormalizer + BertPreTokenizer on printable ASCII: lower-case, then split at spaces and
around every punctuation mark (a test checks it against ``tokenizers``)."""


def word_counts(texts: Iterator[str]) -> Counter[str]:
    """Count the pre-tokenized words of ``texts`` (BertNormalizer + BertPreTokenizer).

    Printable ASCII text (all of :func:`corpus`) is split by :data:`_ASCII_WORDS`, the same
    words five times faster than ``tokenizers``' per-string calls; any other text goes through
    ``tokenizers`` itself."""
    from tokenizers import Tokenizer, models

    pipe = _pipeline(Tokenizer(models.WordPiece(unk_token="[UNK]")))
    counts: Counter[str] = Counter()
    for text in texts:
        if text.isascii() and text.isprintable():
            counts.update(_ASCII_WORDS.findall(text.lower()))
            continue
        normalized = pipe.normalizer.normalize_str(text)
        counts.update(w for w, _ in pipe.pre_tokenizer.pre_tokenize_str(normalized))
    return counts


def _merge_pieces(counts: Counter[str], vocab_size: int, min_frequency: int) -> list[str]:
    """WordPiece vocabulary learning as ``tokenizers``' ``WordPieceTrainer`` does it (BPE merges
    over ``##``-prefixed continuation pieces), but deterministic: of the most frequent pairs the
    lexicographically smallest is merged first.  Returns the alphabet, then the merged pieces in
    merge order.
    """
    words = sorted(counts)
    freqs = [counts[w] for w in words]
    symbols = [[w[0]] + ["##" + c for c in w[1:]] for w in words]
    alphabet = set(_ALPHABET) | {"##" + c for c in _ALPHABET}
    alphabet |= {sym for syms in symbols for sym in syms}
    tokens = sorted(alphabet)
    known = set(tokens)

    pair_counts: dict[tuple[str, str], int] = {}
    where: dict[tuple[str, str], set[int]] = {}

    def account(i: int, sign: int) -> set[tuple[str, str]]:
        syms, f, touched = symbols[i], freqs[i], set()
        for pair in zip(syms, syms[1:], strict=False):
            pair_counts[pair] = pair_counts.get(pair, 0) + sign * f
            touched.add(pair)
            if sign > 0:
                where.setdefault(pair, set()).add(i)
        return touched

    for i in range(len(words)):
        account(i, +1)
    heap = [(-c, a, b) for (a, b), c in pair_counts.items()]
    heapq.heapify(heap)

    while len(tokens) < vocab_size and heap:
        neg, a, b = heapq.heappop(heap)
        count = pair_counts.get((a, b), 0)
        if count != -neg:
            continue  # stale entry; the current count was pushed when it changed
        if count < min_frequency:
            break
        merged = a + b[2:]
        if merged not in known:
            known.add(merged)
            tokens.append(merged)
        touched: set[tuple[str, str]] = set()
        for i in sorted(where.pop((a, b), ())):
            touched |= account(i, -1)
            syms, out, j = symbols[i], [], 0
            while j < len(syms):
                if j + 1 < len(syms) and syms[j] == a and syms[j + 1] == b:
                    out.append(merged)
                    j += 2
                else:
                    out.append(syms[j])
                    j += 1
            symbols[i] = out
            touched |= account(i, +1)
        for pair in touched:
            c = pair_counts.get(pair, 0)
            if c > 0:
                heapq.heappush(heap, (-c, *pair))
            else:
                pair_counts.pop(pair, None)
                where.pop(pair, None)
    return tokens


def train_vocab(
    vocab_size: int = VOCAB_SIZE,
    n_reviews: int = CORPUS_REVIEWS,
    seed: int = CORPUS_SEED,
    deterministic: bool = True,
) -> list[str]:
    """Train a WordPiece vocabulary on :func:`corpus`; returns the tokens in id order.

    ``deterministic=True`` (the default, used for the shipped file) runs the merge loop in
    :func:`_merge_pieces`.  ``deterministic=False`` uses ``tokenizers.trainers.WordPieceTrainer``
    itself, which is the same algorithm but breaks ties between equally frequent pairs in Rust
    hash-map order, so two runs on the same corpus give slightly different vocabularies.
    """
    if deterministic:
        counts = word_counts(corpus(n_reviews, seed))
        pieces = _merge_pieces(counts, vocab_size - len(SPECIAL_TOKENS), min_frequency=2)
        return list(SPECIAL_TOKENS) + pieces

    from tokenizers import Tokenizer, models, trainers

    tokenizer = _pipeline(Tokenizer(models.WordPiece(unk_token="[UNK]")))
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=list(_ALPHABET),
        continuing_subword_prefix="##",
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus(n_reviews, seed), trainer=trainer, length=n_reviews)
    vocab = tokenizer.get_vocab()
    tokens = sorted(vocab, key=vocab.__getitem__)
    have = set(tokens)
    # Make sure every character also exists as a continuation piece.
    tokens += [t for c in _ALPHABET for t in (c, "##" + c) if t not in have]
    return tokens


def build_vocab(
    path: str | Path = VOCAB_FILE,
    vocab_size: int = VOCAB_SIZE,
    n_reviews: int = CORPUS_REVIEWS,
    seed: int = CORPUS_SEED,
) -> Path:
    """Train the vocabulary (:func:`train_vocab`) and write it, one token a line, atomically."""
    path = Path(path)
    tokens = train_vocab(vocab_size, n_reviews, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(tokens) + "\n")
    os.replace(tmp, path)
    load_tokenizer.cache_clear()
    log.info("wrote %d WordPiece tokens to %s", len(tokens), path)
    return path


@functools.lru_cache(maxsize=4)
def load_tokenizer(path: str | Path = VOCAB_FILE, max_length: int = MAX_LENGTH) -> Tokenizer:
    """The BERT-style WordPiece ``tokenizers.Tokenizer`` over the vocabulary at ``path``.

    Builds the vocabulary first if the file is missing.  Encodings are ``[CLS] ... [SEP]``,
    truncated to ``max_length`` tokens (specials included); padding is left to the caller.
    """
    from tokenizers import Tokenizer, decoders, models, processors

    path = Path(path)
    if not path.exists():
        log.warning("WordPiece vocabulary %s missing; building it (deterministic)", path)
        build_vocab(path)
    tokens = path.read_text(encoding="utf-8").splitlines()
    vocab = {t: i for i, t in enumerate(tokens)}
    tokenizer = _pipeline(
        Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    tokenizer.enable_truncation(max_length=max_length)
    return tokenizer


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    build_vocab()


if __name__ == "__main__":
    main()
