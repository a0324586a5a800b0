"""Registry of search spaces; `create_search_space(name, **kw)` is the one way to build one."""

from __future__ import annotations

from search_space.base import SearchSpace
from utils.registry import Registry

SEARCH_SPACES: Registry[SearchSpace] = Registry("search space")
register_search_space = SEARCH_SPACES.register


def create_search_space(name: str, **kwargs: object) -> SearchSpace:
    """Build the search space registered under `name`."""
    return SEARCH_SPACES.create(name, **kwargs)


def list_search_spaces(aliases: bool = True) -> list[str]:
    """Names of every registered search space (aliases included unless `aliases=False`)."""
    return SEARCH_SPACES.names(aliases)
