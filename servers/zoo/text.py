"""Offline text for DistilBERT: a synthetic movie-review corpus and a real WordPiece tokenizer.

No corpus or vocabulary can be downloaded on these machines, so both are made here:

* :func:`review` fills sentence templates with the word lists in ``servers/data/review_words.txt``
  (nouns, positive/negative adjectives, verbs with simple inflections, adverbs, names), giving
  English-looking movie reviews.  The same generator makes DistilBERT requests, so one word is
  about one token (plus a token per punctuation mark).
* :func:`build_vocab` trains a WordPiece vocabulary on that corpus and writes it to
  ``servers/data/wordpiece_vocab.txt``, which is committed so it is not rebuilt on every run.
  The training is ``tokenizers``' ``WordPieceTrainer`` algorithm (BPE merges of ``##``
  continuation pieces) with a deterministic tie-break, because the library's trainer breaks
  ties in hash-map order and so is not reproducible run to run (see :func:`train_vocab`).
* :func:`load_tokenizer` assembles the BERT-style pipeline around that vocabulary: BertNormalizer
  (lower-casing), BertPreTokenizer, WordPiece with ``##`` continuation pieces, a
  ``[CLS] $A [SEP]`` template and truncation to 512 tokens.  Words outside the vocabulary split
  into ``##`` sub-words, as with the real ``bert-base-uncased`` vocabulary.

Rebuild the vocabulary with ``python -m servelab.servers.zoo.text``.
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

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
WORDS_FILE = DATA_DIR / "review_words.txt"
VOCAB_FILE = DATA_DIR / "wordpiece_vocab.txt"

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
"""Special tokens, in id order: ``[PAD]`` is id 0 (DistilBERT's ``pad_token_id``)."""
PAD_ID = 0
MAX_LENGTH = 512
VOCAB_SIZE = 8000
CORPUS_REVIEWS = 20_000
CORPUS_SEED = 1234

# Every printable ASCII character gets a word-initial and a ``##`` piece, so no ASCII word maps
# to [UNK].
_ALPHABET = string.ascii_lowercase + string.digits + string.punctuation

# -- word lists and inflection ---------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def load_words(path: str | Path = WORDS_FILE) -> dict[str, tuple[str, ...]]:
    """The word lists: section name -> words (in file order, duplicates removed)."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        if current is None:
            raise ValueError(f"{path}: words before the first [section] header")
        current.extend(w for w in line.split() if w not in current)
    return {k: tuple(v) for k, v in sections.items()}


_PAST = {
    "see": "saw",
    "tell": "told",
    "find": "found",
    "lose": "lost",
    "win": "won",
    "fight": "fought",
    "fall": "fell",
    "rise": "rose",
    "break": "broke",
    "build": "built",
    "keep": "kept",
    "begin": "began",
    "write": "wrote",
    "shoot": "shot",
    "sing": "sang",
    "run": "ran",
    "drive": "drove",
    "fly": "flew",
    "swim": "swam",
    "hide": "hid",
    "steal": "stole",
    "meet": "met",
    "hold": "held",
    "leave": "left",
    "feel": "felt",
    "think": "thought",
    "know": "knew",
    "understand": "understood",
    "grow": "grew",
    "light": "lit",
    "speak": "spoke",
    "forget": "forgot",
    "hurt": "hurt",
    "drag": "dragged",
    "sag": "sagged",
    "hum": "hummed",
    "stop": "stopped",
}
_DOUBLE = {"run", "swim", "win", "begin", "drag", "sag", "hum", "stop", "forget", "shop"}
_IRREGULAR_PLURAL = {"child": "children", "series": "series", "life": "lives", "thief": "thieves"}
_VOWELS = set("aeiou")


def _s_form(word: str) -> str:
    if word.endswith(("s", "sh", "ch", "x", "z")):
        return word + "es"
    if word.endswith("y") and word[-2] not in _VOWELS:
        return word[:-1] + "ies"
    if word.endswith("o") and word[-2] not in _VOWELS:
        return word + "es"
    return word + "s"


@functools.lru_cache(maxsize=4096)
def third_person(verb: str) -> str:
    return _s_form(verb)


@functools.lru_cache(maxsize=4096)
def plural(noun: str) -> str:
    return _IRREGULAR_PLURAL.get(noun) or _s_form(noun)


@functools.lru_cache(maxsize=4096)
def past(verb: str) -> str:
    if verb in _PAST:
        return _PAST[verb]
    if verb.endswith("e"):
        return verb + "d"
    if verb.endswith("y") and verb[-2] not in _VOWELS:
        return verb[:-1] + "ied"
    return verb + "ed"


@functools.lru_cache(maxsize=4096)
def gerund(verb: str) -> str:
    if verb.endswith("ie"):
        return verb[:-2] + "ying"
    if verb.endswith("e") and not verb.endswith("ee"):
        return verb[:-1] + "ing"
    if verb in _DOUBLE:
        return verb + verb[-1] + "ing"
    return verb + "ing"


# -- the review generator --------------------------------------------------------------------------

_TEMPLATES = (
    "the {n} is {adv} {A}.",
    "i {ved} this {n} and it was {adv} {A}.",
    "{name} {vs} the {n} with {a} {n2}.",
    "what a {A} {n}.",
    "the {n} of the {n2} felt {A}, and the {n3} was {adv} {A2}.",
    "{name} plays a {a} {n} who {vs} the {n2}.",
    "if you {v} {a} {ns}, you will {v2} this one.",
    "it is a {A} {n} about a {a} {n2} and {pron} {n3}.",
    "by the {n}, i was {ving} the {n2}.",
    "the director {adv} {vs} the {n}, but the {n2} never {vs2}.",
    "there is nothing {A} about the {n}.",
    "overall, a {A} {n} that {vs} {adv}.",
    "i would {adv} {v} it to anyone who {vs} {a} {ns}.",
    "{adv}, the {n} {ved} me.",
    "we {ved} the {n} for {num} minutes before the {n2} {ved2}.",
    "the {ns} are {A} and the {ns2} are {A2}.",
    "{name} and {name2} {ved} the {n} in this {A} {n2}.",
    "as a {n}, it {vs} {adv} well, yet the {n2} {vs2} the {n3}.",
    "the {n} {ved} from {A} to {A2} in the {ord} act.",
    "{pron} {n} is {adv} {A}, and {name} is {A2} as the {n2}.",
    "i {adv} {ved} the {n}.",
    "the {ns} {v} the {n2} while the {n3} {vs} {adv}.",
    "this is {num} hours of {A} {n} and {A2} {n2}.",
    "even the {n} could not {v} a {A} {n2} like this.",
    "{name} {adv} {vs} every {n}.",
    "the first {n} was {A}; the second was {adv} {A2}.",
    "do not {v} the {n}, {v2} the {n2} instead.",
    "in the end, the {n} {vs} the {n2} and the {ns3} {v} the {n4}.",
)
_PRONOUNS = ("his", "her", "their", "its", "our", "my", "your")
_NUMBERS = ("two", "three", "four", "five", "ten", "twenty", "thirty", "forty", "ninety")
_ORDINALS = ("first", "second", "third", "final", "last")


class _Draws:
    """``random()`` and ``integers(n)`` of a NumPy ``Generator``, called one at a time."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.random = rng.random
        self._integers = rng.integers

    def integers(self, n: int) -> int:
        return int(self._integers(n))

    def close(self) -> None:
        pass


_MASK32 = 0xFFFFFFFF
_DOUBLE_SCALE = 1.0 / 9007199254740992.0  # 2**-53


class _Pcg64Draws:
    """The same draws for a ``Generator`` over ``PCG64``, replayed in Python from its raw 64-bit
    output (fetched in blocks): a NumPy call costs about 3 us, the corpus makes 2 million.

    Exactly NumPy's algorithms: ``random()`` is ``(next64 >> 11) * 2**-53``; ``integers(n)``
    (``n <= 2**32``) is Lemire's multiply-and-reject on ``next_uint32``, which hands out the
    low then the high half of one 64-bit output and keeps the high half in the bit
    generator's state (``has_uint32`` / ``uinteger``) across other draws.  :meth:`close` leaves
    the generator exactly where the same NumPy calls would have (the words fetched but not
    used are given back), so the caller's later draws are unchanged.
    """

    def __init__(self, rng: np.random.Generator, block: int = 256) -> None:
        self._bg = rng.bit_generator
        self._start = self._bg.state
        self._has32 = bool(self._start["has_uint32"])
        self._u32 = int(self._start["uinteger"])
        self._block = block
        self._words: list[int] = []
        self._pos = 0
        self._used = 0

    def _next64(self) -> int:
        if self._pos == len(self._words):
            self._words = self._bg.random_raw(self._block).tolist()
            self._pos = 0
            self._block = min(self._block * 4, 1 << 16)
        self._pos += 1
        self._used += 1
        return self._words[self._pos - 1]

    def _next32(self) -> int:
        if self._has32:
            self._has32 = False
            return self._u32
        x = self._next64()
        self._has32, self._u32 = True, x >> 32
        return x & _MASK32

    def random(self) -> float:
        return (self._next64() >> 11) * _DOUBLE_SCALE

    def integers(self, n: int) -> int:
        """NumPy's ``int(rng.integers(n))`` for ``1 <= n <= 2**32``."""
        if n == 1:
            return 0
        if n == 1 << 32:
            return self._next32()
        if self._has32:  # _next32, inlined: the corpus makes 2 million of these
            self._has32 = False
            m = self._u32 * n
        else:
            x = self._next64()
            self._has32, self._u32 = True, x >> 32
            m = (x & _MASK32) * n
        if (m & _MASK32) < n:
            threshold = ((1 << 32) - n) % n
            while (m & _MASK32) < threshold:
                m = self._next32() * n
        return m >> 32

    def close(self) -> None:
        bg = self._bg
        bg.state = self._start
        bg.advance(self._used)  # type: ignore[attr-defined]  # PCG64's; resets the buffer
        state = dict(bg.state)
        state["has_uint32"], state["uinteger"] = int(self._has32), self._u32
        bg.state = state


def _draws(rng: np.random.Generator) -> _Draws | _Pcg64Draws:
    if type(rng.bit_generator) is np.random.PCG64:
        return _Pcg64Draws(rng)
    return _Draws(rng)


def review(rng: np.random.Generator, n_sentences: int | None = None) -> str:
    """One synthetic movie review (3-8 sentences unless ``n_sentences`` is given)."""
    draws = _draws(rng)
    try:
        return _review(draws, n_sentences)
    finally:
        draws.close()


def _review(rng: _Draws | _Pcg64Draws, n_sentences: int | None = None) -> str:
    w = load_words()
    positive = rng.random() < 0.5
    own, other = (w["adj_pos"], w["adj_neg"]) if positive else (w["adj_neg"], w["adj_pos"])
    integers = rng.integers

    def pick(seq: tuple[str, ...]) -> str:
        return seq[integers(len(seq))]

    def sentiment() -> str:  # mostly on-sentiment, sometimes mixed, sometimes neutral
        r = rng.random()
        return pick(own) if r < 0.75 else pick(other) if r < 0.9 else pick(w["adj"])

    if n_sentences is None:
        n_sentences = integers(6) + 3  # rng.integers(3, 9)
    sentences = []
    for _ in range(n_sentences):
        template = _TEMPLATES[integers(len(_TEMPLATES))]
        verbs = [pick(w["verb"]) for _ in range(2)]
        nouns = [pick(w["noun"]) for _ in range(4)]
        fields = {
            "n": nouns[0],
            "n2": nouns[1],
            "n3": nouns[2],
            "n4": nouns[3],
            "ns": plural(nouns[0]),
            "ns2": plural(nouns[1]),
            "ns3": plural(nouns[2]),
            "A": sentiment(),
            "A2": sentiment(),
            "a": pick(w["adj"]),
            "v": verbs[0],
            "v2": verbs[1],
            "vs": third_person(verbs[0]),
            "vs2": third_person(verbs[1]),
            "ved": past(verbs[0]),
            "ved2": past(verbs[1]),
            "ving": gerund(verbs[0]),
            "adv": pick(w["adverb"]),
            "name": pick(w["name"]),
            "name2": pick(w["name"]),
            "pron": pick(_PRONOUNS),
            "num": pick(_NUMBERS),
            "ord": pick(_ORDINALS),
        }
        s = template.format(**fields)
        sentences.append(s[0].upper() + s[1:])
    return " ".join(sentences)


def review_text(n_words: int, rng: np.random.Generator) -> str:
    """Review-like text of exactly ``n_words`` whitespace-separated words (``n_words >= 1``)."""
    if n_words < 1:
        raise ValueError(f"n_words must be >= 1, got {n_words}")
    words: list[str] = []
    draws = _draws(rng)
    try:
        while len(words) < n_words:
            words.extend(_review(draws).split())
    finally:
        draws.close()
    return " ".join(words[:n_words])


def corpus(n_reviews: int = CORPUS_REVIEWS, seed: int = CORPUS_SEED) -> Iterator[str]:
    """The deterministic training corpus: ``n_reviews`` reviews from a seeded generator."""
    draws = _draws(np.random.default_rng(seed))
    try:
        for _ in range(n_reviews):
            yield _review(draws)
    finally:
        draws.close()


# -- WordPiece -------------------------------------------------------------------------------------


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
