"""The executor interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar


class Executor(ABC):
    """Runs ``fn(item)`` for every item, yielding ``(item, result_or_exception)`` as each ends."""

    name: ClassVar[str] = ""

    @abstractmethod
    def map_unordered(
        self, fn: Callable[[Any], Any], items: Sequence[Any]
    ) -> Iterator[tuple[Any, Any]]:
        """Yield ``(item, fn(item))`` in completion order; an exception is yielded, not raised."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release workers (idempotent)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
