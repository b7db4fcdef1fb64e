"""Lazy public names for packages whose modules pull in heavy dependencies (PEP 562)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``name`` from ``exports[name]`` on first use and caches it.

    Lets ``import flex`` stay cheap (the CLI imports every package at start) while ``from flex import X``
    keeps working for every public name.
    """

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module hook must have this name
        try:
            module = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
