"""Name -> variant registries (robots, tasks, experts, VLA backends) with errors that list what exists."""

from __future__ import annotations

import importlib
from typing import TypeVar

T = TypeVar("T")


class Registry(dict[str, T]):
    """A dict that refuses duplicate names and answers unknown names with the known ones."""

    def __init__(self, kind: str, lazy: dict[str, str] | None = None) -> None:
        """`lazy` maps names to modules that register them on import (heavy variants, e.g. torch models)."""
        super().__init__()
        self.kind = kind
        self.lazy = dict(lazy or {})

    def add(self, name: str, item: T) -> T:
        if name in self:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self[name] = item
        return item

    def lookup(self, name: str) -> T:
        if name not in self and name in self.lazy:
            importlib.import_module(self.lazy[name])
        if name not in self:
            raise ValueError(f"unknown {self.kind} {name!r}; known {self.kind}s: {self.names()}")
        return self[name]

    def names(self) -> list[str]:
        """Every name, registered or loadable on first use."""
        return sorted(set(self) | set(self.lazy))
