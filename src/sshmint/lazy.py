"""Names a package exports but imports only on first use, so that importing the package
stays cheap (``sshmint``, ``sshmint.client``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    namespace: MutableMapping[str, Any],
    exports: Sequence[str],
    homes: Mapping[str, str],
    default_home: str,
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of the package whose ``globals()`` is
    ``namespace``: each name of ``exports`` is imported from the submodule ``homes`` names
    (``default_home`` for the others) when first asked for, then kept in ``namespace``."""
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(f"{package}.{homes.get(name, default_home)}")
        value = getattr(module, name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted([*namespace, *exports])

    return __getattr__, __dir__
