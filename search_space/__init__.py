"""Architecture encodings: the `SearchSpace` interface and its registered spaces."""

from search_space import ofa_mbv3 as _ofa_mbv3  # noqa: F401  (registers the space)
from search_space.base import Arch, InvalidArchitecture, SearchSpace
from search_space.registry import create_search_space, list_search_spaces, register_search_space

__all__ = [
    "Arch",
    "InvalidArchitecture",
    "SearchSpace",
    "create_search_space",
    "list_search_spaces",
    "register_search_space",
]
