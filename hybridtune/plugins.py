"""Named registries for the extension points: ingest formats, LLM backends, judge metrics.

A registry maps a name to a class (or object). Members register themselves where they are
defined; the registry imports its list of built-in modules (and any installed package's
entry points in its group) on first lookup, so nothing else needs an import edit. A second
member under a taken name is refused.

    BACKENDS = Registry("backend", modules=("hybridtune.llm.fake", ...), group="hybridtune.backends")
    @BACKENDS.register("mine")
    class Mine(Backend): ...
    BACKENDS.get("mine", key="endpoints.local.backend")   # UserError naming the key if unknown
"""
from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import UserError

T = TypeVar("T")


def _qualname(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


class Registry(Generic[T]):
    def __init__(self, kind: str, modules: tuple[str, ...] = (), group: str | None = None):
        self.kind = kind
        self._modules = modules
        self._group = group
        self._items: dict[str, T] = {}
        self._loaded = False

    def add(self, name: str, obj: T) -> T:
        """Register `obj` as `name`; a different member under a taken name is refused."""
        have = self._items.get(name)
        if have is not None and _qualname(have) != _qualname(obj):  # the same class re-imported is fine
            raise ValueError(f"{self.kind} {name!r} is already registered by {_qualname(have)}; "
                             f"{_qualname(obj)} needs another name")
        self._items[name] = obj
        return obj

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator: `@REGISTRY.register("name")`."""
        return lambda obj: self.add(name, obj)

    def remove(self, name: str) -> None:
        """Take a member out (tests that add a throwaway member clean up with this)."""
        self._items.pop(name, None)

    def load(self) -> None:
        """Import the built-in modules and the entry points of `group` (once)."""
        if self._loaded:
            return
        self._loaded = True
        for mod in self._modules:
            importlib.import_module(mod)
        if self._group:
            from importlib.metadata import entry_points

            for ep in entry_points(group=self._group):
                self.add(ep.name, ep.load())

    def get(self, name: str, key: str = "") -> T:
        """The member `name`; unknown: one UserError naming `key`, the known names and the closest one."""
        self.load()
        if name not in self._items:
            close = difflib.get_close_matches(name, self._items, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise UserError(f"{key or self.kind}: unknown {self.kind} '{name}'; {hint}use one of {', '.join(self.names())}")
        return self._items[name]

    def names(self) -> list[str]:
        self.load()
        return list(self._items)

    def items(self) -> list[tuple[str, T]]:
        self.load()
        return list(self._items.items())

    def __contains__(self, name: object) -> bool:
        self.load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())
