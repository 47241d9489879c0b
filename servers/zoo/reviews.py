"""The synthetic movie-review corpus: English-looking reviews from seeded sentence templates.

No corpus can be downloaded on these machines, so one is made here: :func:`review` fills
sentence templates with the word lists in ``servers/data/review_words.txt`` (nouns,
positive/negative adjectives, verbs with simple inflections, adverbs, names).  The same
generator makes DistilBERT requests (:func:`review_text`), so one word is about one token (plus
a token per punctuation mark), and trains the WordPiece vocabulary (:func:`corpus`, used by
:mod:`servelab.servers.zoo.wordpiece`).  Its random draws go through
:mod:`servelab.servers.zoo.pcg64_draws`: the same values as NumPy's own calls, faster.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from servelab.servers.zoo.pcg64_draws import Draws, draws_for

WORDS_FILE = Path(__file__).resolve().parent.parent / "data" / "review_words.txt"
CORPUS_REVIEWS = 20_000
CORPUS_SEED = 1234

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


def review(rng: np.random.Generator, n_sentences: int | None = None) -> str:
    """One synthetic movie review (3-8 sentences unless ``n_sentences`` is given)."""
    draws = draws_for(rng)
    try:
        return _review(draws, n_sentences)
    finally:
        draws.close()


def _review(rng: Draws, n_sentences: int | None = None) -> str:
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
    draws = draws_for(rng)
    try:
        while len(words) < n_words:
            words.extend(_review(draws).split())
    finally:
        draws.close()
    return " ".join(words[:n_words])


def corpus(n_reviews: int = CORPUS_REVIEWS, seed: int = CORPUS_SEED) -> Iterator[str]:
    """The deterministic training corpus: ``n_reviews`` reviews from a seeded generator."""
    draws = draws_for(np.random.default_rng(seed))
    try:
        for _ in range(n_reviews):
            yield _review(draws)
    finally:
        draws.close()
