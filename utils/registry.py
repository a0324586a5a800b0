"""A name-to-factory registry, the single way to build a pluggable part (timm-style)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from utils.errors import UsageError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories of one kind of part (datasets, search spaces, predictors...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str, *aliases: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator recording a factory under `name` (and any aliases)."""

        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            for key in (name, *aliases):
                if key in self._factories:
                    raise ValueError(f"{self.kind} {key!r} is registered twice")
                self._factories[key] = factory
            return factory

        return decorator

    def names(self) -> list[str]:
        """Every registered name, aliases included, sorted."""
        return sorted(self._factories)

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered under `name`; an unknown name is a `UsageError` listing the choices."""
        try:
            return self._factories[name]
        except KeyError:
            raise UsageError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}") from None

    def create(self, name: str, **kwargs: object) -> T:
        """Build the part registered under `name` with keyword arguments."""
        return self.get(name)(**kwargs)

    def __contains__(self, name: str) -> bool:
        return name in self._factories
