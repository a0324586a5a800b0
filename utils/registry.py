"""A name-to-factory registry, the single way to build a pluggable part (timm-style).

Each entry carries its metadata beside its factory (what it is, which spaces or kinds it serves, ...), so no side
table has to be kept in step with the registry. `register_temporarily` adds an entry for the length of a block
(tests of a stand-in part), and removes it again.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from utils.errors import UsageError

T = TypeVar("T")


@dataclass(frozen=True)
class RegistryEntry(Generic[T]):
    """One registered part: its name, aliases, factory and metadata."""

    name: str
    factory: Callable[..., T]
    aliases: tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def help(self) -> str:
        """One line saying what the entry is: its `help` metadata, else the first line of the factory's docstring."""
        text = self.meta.get("help") or (self.factory.__doc__ or "").strip()
        return text.splitlines()[0].rstrip(".") if text else ""


class Registry(Generic[T]):
    """Maps names to factories of one kind of part (datasets, search spaces, predictors...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, RegistryEntry[T]] = {}  # by name and alias, in registration order

    def register(self, name: str, *aliases: str, **meta: Any) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator recording a factory under `name` (and any aliases), with keyword metadata."""

        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            entry = RegistryEntry(name, factory, tuple(aliases), MappingProxyType(dict(meta)))
            for key in (name, *aliases):
                if key in self._entries:
                    raise ValueError(f"{self.kind} {key!r} is registered twice")
            for key in (name, *aliases):
                self._entries[key] = entry
            return factory

        return decorator

    def register_class(self, name: str, *aliases: str, **meta: Any) -> Callable[[type], type]:
        """Decorator recording a class whose `name` attribute must be `name` (a mismatch is a `ValueError`)."""
        register = self.register(name, *aliases, **meta)

        def decorator(cls: type) -> type:
            own = getattr(cls, "name", None)
            if own != name:
                raise ValueError(f"{self.kind} class {cls.__name__} has name {own!r} but is registered as {name!r}")
            register(cls)
            return cls

        return decorator

    @contextmanager
    def register_temporarily(self, name: str, factory: Callable[..., T], **meta: Any) -> Iterator[None]:
        """Register `factory` under `name` for the duration of a `with` block."""
        self.register(name, **meta)(factory)
        try:
            yield
        finally:
            del self._entries[name]

    def names(self, aliases: bool = True) -> list[str]:
        """Every registered name, sorted; aliases included unless `aliases=False`."""
        return sorted(k for k, e in self._entries.items() if aliases or k == e.name)

    def entries(self) -> list[RegistryEntry[T]]:
        """Every entry once, in registration order."""
        return [e for k, e in self._entries.items() if k == e.name]

    def entry(self, name: str) -> RegistryEntry[T]:
        """The entry registered under `name` or an alias; an unknown name is a `UsageError` listing the choices."""
        try:
            return self._entries[name]
        except KeyError:
            raise UsageError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}") from None

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered under `name`; an unknown name is a `UsageError` listing the choices."""
        return self.entry(name).factory

    def meta(self, name: str) -> Mapping[str, Any]:
        """The metadata of the entry registered under `name`."""
        return self.entry(name).meta

    def create(self, name: str, **kwargs: object) -> T:
        """Build the part registered under `name` with keyword arguments."""
        return self.get(name)(**kwargs)

    def describe(self) -> str:
        """`name (alias): help; ...` for every entry: the choices part of a CLI help text."""
        parts = []
        for e in self.entries():
            label = e.name + (f" ({', '.join(e.aliases)})" if e.aliases else "")
            parts.append(f"{label}: {e.help}" if e.help else label)
        return "; ".join(parts)

    def __contains__(self, name: str) -> bool:
        return name in self._entries


def import_submodules(package: str, path: Iterable[str], skip: Iterable[str] = ()) -> None:
    """Import every module of `package` (its `__path__`) but `skip`: each registers its entries by existing."""
    for module in pkgutil.iter_modules(path):
        if module.name not in skip:
            importlib.import_module(f"{package}.{module.name}")
