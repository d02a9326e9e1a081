"""Old import paths that keep working for one release: a module that moved leaves an alias at its old name,
which forwards every attribute to the new module with a ``DeprecationWarning`` naming the new path.

    alias("tempo_lab.runner", "tempo_lab.plumbing.series")   # in the parent package's __init__

``import tempo_lab.runner`` and ``from tempo_lab.runner import run_series`` then work (the alias sits in
``sys.modules``, where the import system looks first); the new module is imported only when an attribute is
used. A function that moved to another module leaves its name behind the same way:

    __getattr__ = moved_names(__name__, {"figure": "tempo_lab.studies.figures:compare_figure"})

Contents: :func:`alias`, :func:`moved_names`, :data:`MOVED` (old path -> new path).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Mapping
from importlib import import_module
from types import ModuleType
from typing import Any

#: every moved module: old path -> new path (the aliases are removed in the release after 0.1)
MOVED: dict[str, str] = {}


class _Alias(ModuleType):
    """A module at an old path: each attribute comes from the new module, with a deprecation warning."""

    def __init__(self, old: str, new: str):
        super().__init__(old, f"Moved to {new}; this alias forwards to it for one release.")
        self.__dict__["_new"] = new

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        new = self.__dict__["_new"]
        warnings.warn(
            f"{self.__name__} moved to {new}: import {name} from {new}", DeprecationWarning, stacklevel=2
        )
        return getattr(import_module(new), name)


def alias(old: str, new: str) -> None:
    """Register a forwarding alias of module ``new`` under its old path ``old``."""
    MOVED[old] = new
    sys.modules.setdefault(old, _Alias(old, new))


def moved_names(module: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that serves each old name in ``names`` (``name -> "new.module:new_name"``)
    from its new home with a ``DeprecationWarning`` naming it, for one release."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        new_module, new_name = names[name].split(":")
        warnings.warn(f"{module}.{name} moved to {new_module}.{new_name}", DeprecationWarning, stacklevel=2)
        return getattr(import_module(new_module), new_name)

    return __getattr__
