"""A registry of named entries of one kind (tasks, RL algorithms, robot kinds, ...).

Entries join by name when their module is imported; the built-in modules are imported on the
first lookup, so naming them costs nothing until they are needed (``robo robot list`` does
not import the tasks' MuJoCo models). An unknown name is a ``UnknownNameError`` that lists
the known ones; registering a name twice is a bug.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Generic, TypeVar

from robo_policies.utils.errors import UnknownNameError

Entry = TypeVar("Entry")


class Registry(Generic[Entry]):
    """Names -> entries; ``what`` names the kind in messages ("task", "robot kind", ...)."""

    def __init__(self, what: str, plural: str, builtin_modules: Sequence[str] = ()) -> None:
        self.what, self.plural = what, plural
        self.builtin_modules = tuple(builtin_modules)
        self._entries: dict[str, Entry] = {}

    def add(self, name: str, entry: Entry) -> Entry:
        """Register ``entry`` under ``name``."""
        if name in self._entries:
            raise ValueError(f"{self.what} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def load_builtins(self) -> None:
        """Import the built-in modules (each registers its entries on import)."""
        for module in self.builtin_modules:
            importlib.import_module(module)

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        self.load_builtins()
        return sorted(self._entries)

    def get(self, name: str) -> Entry:
        """The entry called ``name``; an unknown name raises with the known ones."""
        self.load_builtins()
        if name not in self._entries:
            raise UnknownNameError(f"unknown {self.what} {name!r}; known {self.plural}: {', '.join(self.names())}")
        return self._entries[name]
