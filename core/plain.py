"""JSON-shaped forms of frozen dataclasses, driven by their field types.

One mechanism for every section of a profile (and anything else of that shape): ``to_plain``
turns a dataclass into dicts, lists and scalars; ``from_plain`` reads it back, refusing unknown
fields and converting each value by its field's annotation — a nested dataclass through its own
``from_dict``, ``tuple[float, ...]`` and ``tuple[float, float]`` element by element,
``Mapping[str, X]`` value by value, ``float`` / ``int`` by conversion; ``Any`` and ``bool`` are
kept as given.  A value that does not convert raises ``error`` (a ValueError subclass) naming the field.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def to_plain(value: Any) -> Any:
    """Dataclasses -> dicts (field order), tuples -> lists, mappings -> dicts, recursively."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [to_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    return value


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, vars(sys.modules[cls.__module__]))


def convert(tp: Any, value: Any, where: str, error: type[Exception] = ValueError) -> Any:
    """``value`` (JSON-shaped) as annotation ``tp`` describes it."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is bool or tp is str:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return convert(inner, value, where, error)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        read = getattr(tp, "from_dict", None)
        return read(value) if read is not None else from_plain(tp, value, where, error)
    try:
        if tp is float:
            return float(value)
        if tp is int:
            return int(value)
        if origin is tuple:
            items = list(value)
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(convert(args[0], v, where, error) for v in items)
            if len(items) != len(args):
                raise error(f"{where}: expected {len(args)} values, got {len(items)}")
            return tuple(convert(a, v, where, error) for a, v in zip(args, items, strict=True))
        if origin in (Mapping, dict, typing.Mapping):
            key_tp, val_tp = args or (str, Any)
            return {convert(key_tp, k, where, error) if key_tp is not str else str(k):
                    convert(val_tp, v, f"{where}[{k}]", error) for k, v in dict(value).items()}
    except (TypeError, ValueError) as exc:
        if isinstance(exc, error):
            raise
        raise error(f"{where}: cannot read {value!r} as {tp}: {exc}") from None
    return value


def from_plain(cls: type[T], data: Mapping[str, Any], where: str,
               error: type[Exception] = ValueError) -> T:
    """``cls(**data)`` with every value converted by its field's annotation; unknown fields
    raise ``error``."""
    if not isinstance(data, Mapping):
        raise error(f"{where}: expected an object, got {type(data).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise error(f"{where}: unknown field(s) {unknown}; valid: {sorted(names)}")
    hints = _hints(cls)
    return cls(**{k: convert(hints[k], v, f"{where}.{k}", error) for k, v in data.items()})
