"""Draws of a NumPy ``Generator`` one at a time, fast: ``random()`` and ``integers(n)`` with the
values NumPy's own calls give, for the review generator's 2 million draws.

:func:`draws_for` picks :class:`Pcg64Draws` (NumPy's algorithms replayed in Python from the
bit generator's raw output) for a ``PCG64`` generator, :class:`NumpyDraws` (NumPy's calls
themselves) for any other.
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np


class NumpyDraws:
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


class Pcg64Draws:
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


Draws: TypeAlias = NumpyDraws | Pcg64Draws


def draws_for(rng: np.random.Generator) -> Draws:
    """The fast draws of ``rng``; :meth:`close` them to leave ``rng`` where NumPy's calls would."""
    if type(rng.bit_generator) is np.random.PCG64:
        return Pcg64Draws(rng)
    return NumpyDraws(rng)
