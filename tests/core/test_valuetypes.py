"""docs/performance.md#value-types: ``value_type`` keeps every guarantee of a frozen, slotted
dataclass and only replaces how ``__init__`` fills the slots."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field, make_dataclass

import pytest

from sshmint.valuetypes import value_type


@value_type
@dataclass(frozen=True, slots=True)
class Point:
    x: int
    y: int = 0
    label: str = field(default="", kw_only=True)


def test_init_has_the_dataclass_signature_and_fills_every_field() -> None:
    assert str(inspect.signature(Point)) == "(x: 'int', y: 'int' = 0, *, label: 'str' = '') -> None"
    assert (Point(1).x, Point(1).y, Point(1).label) == (1, 0, "")
    assert Point(1, 2, label="a") == Point(x=1, y=2, label="a")
    with pytest.raises(TypeError):
        Point(1, 2, "a")  # type: ignore[call-arg]  # label is keyword-only
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]


def test_frozen_value_semantics_are_kept() -> None:
    point = Point(1, 2, label="a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        point.x = 3  # type: ignore[misc]
    assert hash(point) == hash(Point(1, 2, label="a")) and point != Point(1, 3, label="a")
    assert dataclasses.replace(point, y=5) == Point(1, 5, label="a")
    assert repr(point) == "Point(x=1, y=2, label='a')"
    assert not hasattr(point, "__dict__")


def test_only_frozen_slotted_dataclasses_with_plain_fields_are_taken() -> None:
    rejected = [
        make_dataclass("Mutable", ["x"], slots=True),
        make_dataclass("Unslotted", ["x"], frozen=True),
        make_dataclass(
            "Factory", [("x", list[int], field(default_factory=list))], frozen=True, slots=True
        ),
        make_dataclass(
            "PostInit", ["x"], frozen=True, slots=True, namespace={"__post_init__": print}
        ),
    ]
    for cls in rejected:
        with pytest.raises(TypeError):
            value_type(cls)
