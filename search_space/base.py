"""The `SearchSpace` interface: integer genomes for pymoo and plain-dict architectures for everything else."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from utils.errors import UsageError

Arch = dict[str, Any]
"""A JSON-serialisable architecture as written to `net.subnet`, e.g. `{"ks": [..], "e": [..], "d": [..], "r": 32}`."""


class InvalidArchitecture(UsageError):
    """An architecture or genome that is not a member of the search space; the message names the bad gene."""


class SearchSpace(ABC):
    """A discrete architecture space with a canonical integer encoding.

    `xl`/`xu` are inclusive integer bounds per gene (pymoo's problem bounds). `encode` and `decode` are mutual
    inverses on canonical architectures; `decode` and `validate` reject anything outside the space.
    """

    name: str = ""

    @property
    @abstractmethod
    def xl(self) -> np.ndarray:
        """Lower bound of every gene (all zeros for choice-index genomes)."""

    @property
    @abstractmethod
    def xu(self) -> np.ndarray:
        """Inclusive upper bound of every gene."""

    @property
    def n_var(self) -> int:
        """Number of genes."""
        return len(self.xl)

    @abstractmethod
    def gene_names(self) -> list[str]:
        """A human-readable name per gene, used in error messages."""

    @abstractmethod
    def encode(self, arch: Arch) -> np.ndarray:
        """The canonical integer genome of `arch` (validated first)."""

    @abstractmethod
    def decode(self, x: np.ndarray | list[int]) -> Arch:
        """The architecture of genome `x`; raises `InvalidArchitecture` naming the offending gene."""

    @abstractmethod
    def validate(self, arch: Arch) -> Arch:
        """The canonical form of `arch`; raises `InvalidArchitecture` naming the offending field."""

    @abstractmethod
    def smallest(self) -> Arch:
        """The architecture with the fewest operations."""

    @abstractmethod
    def largest(self) -> Arch:
        """The architecture with the most operations."""

    def sample(self, n: int, rng: np.random.Generator) -> list[Arch]:
        """`n` distinct architectures drawn uniformly over the genome (fewer only if the space is smaller)."""
        seen: dict[tuple[int, ...], Arch] = {}
        attempts = 0
        while len(seen) < n and attempts < 100 * max(n, 1):
            x = rng.integers(self.xl, self.xu + 1)
            arch = self.decode(x)
            seen.setdefault(tuple(self.encode(arch).tolist()), arch)
            attempts += 1
        return list(seen.values())

    def check_genome(self, x: np.ndarray | list[int]) -> np.ndarray:
        """`x` as an int64 vector, after checking its length, integrality and bounds gene by gene."""
        arr = np.asarray(x)
        if arr.ndim != 1 or arr.shape[0] != self.n_var:
            raise InvalidArchitecture(f"genome must be a vector of {self.n_var} integers, got shape {arr.shape}")
        names = self.gene_names()
        out = np.empty(self.n_var, dtype=np.int64)
        for i, value in enumerate(arr.tolist()):
            if isinstance(value, bool) or not float(value).is_integer():
                raise InvalidArchitecture(f"gene {i} ({names[i]}) = {value!r} is not an integer")
            if not self.xl[i] <= int(value) <= self.xu[i]:
                raise InvalidArchitecture(
                    f"gene {i} ({names[i]}) = {int(value)} is outside [{self.xl[i]}, {self.xu[i]}]"
                )
            out[i] = int(value)
        return out
