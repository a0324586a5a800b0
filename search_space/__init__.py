"""Search spaces: the `SearchSpace` bundle interface and the registered spaces.

Every module or sub-package of this package is imported here, so a space registers itself by existing: adding one
is its own file plus its test (see README.md).
"""

from search_space.base import Arch, ChoiceSpace, CostFunction, InvalidArchitecture, SearchSpace, read_subnet
from search_space.registry import SEARCH_SPACES, create_search_space, list_search_spaces, register_search_space
from utils.registry import import_submodules

import_submodules(__name__, __path__, skip={"base", "registry"})

__all__ = [
    "SEARCH_SPACES",
    "Arch",
    "ChoiceSpace",
    "CostFunction",
    "InvalidArchitecture",
    "SearchSpace",
    "create_search_space",
    "list_search_spaces",
    "read_subnet",
    "register_search_space",
]
