"""core/plain: JSON forms of dataclasses by their field types."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from servelab.core.plain import from_plain, to_plain


class Bad(ValueError):
    pass


@dataclass(frozen=True)
class Leaf:
    a: float = 0.0
    n: int = 1


@dataclass(frozen=True)
class Tree:
    leaf: Leaf = field(default_factory=Leaf)
    leaves: Mapping[str, Leaf] = field(default_factory=dict)
    curve: tuple[float, ...] = (1.0,)
    points: tuple[tuple[float, float], ...] = ()
    nested: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    note: str | None = None
    flag: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)


def test_round_trip_through_json():
    t = Tree(Leaf(2.5, 3), {"x": Leaf(1.0, 2)}, (1.0, 1.5), ((1.0, 2.0), (3.0, 4.0)),
             {"a": {"b": 0.5}}, "hi", True, {"k": [1, 2]})
    data = json.loads(json.dumps(to_plain(t)))
    assert data["points"] == [[1.0, 2.0], [3.0, 4.0]] and data["leaves"] == {"x": {"a": 1.0, "n": 2}}
    assert from_plain(Tree, data, "tree") == t


def test_values_are_converted_by_annotation():
    t = from_plain(Tree, {"leaf": {"a": 2, "n": "4"}, "curve": [1, 2], "points": [[1, 2]],
                          "nested": {"a": {"b": 1}}}, "tree")
    assert t.leaf == Leaf(2.0, 4) and isinstance(t.leaf.a, float)
    assert t.curve == (1.0, 2.0) and t.points == ((1.0, 2.0),) and t.nested == {"a": {"b": 1.0}}


def test_errors_name_the_field():
    with pytest.raises(Bad, match=r"unknown field\(s\) \['typo'\]"):
        from_plain(Tree, {"typo": 1}, "tree", Bad)
    with pytest.raises(Bad, match=r"tree\.leaf\.a: cannot read 'x'"):
        from_plain(Tree, {"leaf": {"a": "x"}}, "tree", Bad)
    with pytest.raises(Bad, match=r"tree\.points: expected 2 values, got 3"):
        from_plain(Tree, {"points": [[1, 2, 3]]}, "tree", Bad)
    with pytest.raises(Bad, match="expected an object"):
        from_plain(Tree, [1], "tree", Bad)  # type: ignore[arg-type]
