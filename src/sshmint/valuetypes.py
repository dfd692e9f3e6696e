"""The one technique for value types built on hot paths (docs/performance.md#value-types).

A value type is a frozen, slotted dataclass: immutable, compared and hashed by value,
``dataclasses.replace`` works, an assignment raises ``FrozenInstanceError``. What a frozen
dataclass costs is its generated ``__init__``, which sets each field through
``object.__setattr__``; :func:`value_type` gives the class an ``__init__`` with the same
signature that fills the slots through their descriptors instead, which costs about what
a mutable dataclass's ``__init__`` does::

    @value_type
    @dataclass(frozen=True, slots=True)
    class Point:
        x: int
        y: int = 0
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["value_type"]

_T = TypeVar("_T")


def value_type(cls: type[_T]) -> type[_T]:
    """Replace the ``__init__`` of the frozen, slotted dataclass ``cls`` by one that fills
    its slots through their descriptors (same parameters, defaults and keyword-only
    fields). Fields with a ``default_factory`` or ``init=False``, and ``__post_init__``,
    are not supported (``TypeError``)."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__}: value_type wants a frozen, slotted dataclass")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: value_type does not run __post_init__")
    namespace: dict[str, Any] = {}
    positional: list[str] = []
    keyword_only: list[str] = []
    body: list[str] = []
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = field.name
        if not field.init or field.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{name}: value_type wants plain fields")
        parameter = name
        if field.default is not dataclasses.MISSING:
            namespace[f"_default_{name}"] = field.default
            parameter += f"=_default_{name}"
        (keyword_only if field.kw_only else positional).append(parameter)
        namespace[f"_set_{name}"] = cls.__dict__[name].__set__
        body.append(f"    _set_{name}(self, {name})\n")
    parameters = ", ".join(["self", *positional, *(["*", *keyword_only] if keyword_only else [])])
    exec(f"def __init__({parameters}) -> None:\n{''.join(body) or '    pass'}", namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__annotations__ = dict(cls.__init__.__annotations__)  # as the generated one has
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
