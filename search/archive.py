"""The archive: every architecture evaluated so far, with its measured numbers, keyed by its canonical genome."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evaluator.base import EvalResult
from search_space.base import Arch, SearchSpace


@dataclass
class Entry:
    """One evaluated architecture: its stats record (as in `net_{i}.stats`) and the iteration that found it."""

    arch: Arch
    stats: dict[str, Any]
    iteration: int
    genome: tuple[int, ...] | None = field(default=None, compare=False, repr=False)
    """The canonical genome, filled in by the archive the first time it needs it (not stored)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON record."""
        return {"arch": self.arch, "stats": self.stats, "iteration": self.iteration}


@dataclass
class Archive:
    """Evaluated architectures (successes and failures apart); nothing is ever evaluated twice."""

    space: SearchSpace
    entries: list[Entry] = field(default_factory=list)
    failed: list[Entry] = field(default_factory=list)

    def key(self, arch: Arch) -> tuple[int, ...]:
        """The canonical genome of `arch`, as a hashable key."""
        return tuple(int(g) for g in self.space.encode(arch))

    def entry_key(self, entry: Entry) -> tuple[int, ...]:
        """The key of an entry's architecture, computed once per entry."""
        if entry.genome is None:
            entry.genome = self.key(entry.arch)
        return entry.genome

    def known(self) -> set[tuple[int, ...]]:
        """Keys of every architecture already tried, failed ones included."""
        return {self.entry_key(e) for e in [*self.entries, *self.failed]}

    def add(self, results: Sequence[EvalResult], iteration: int) -> None:
        """Record a batch of results; failures go to `failed`."""
        for r in results:
            entry = Entry(arch=r.arch, stats=r.stats(), iteration=iteration)
            (self.entries if r.ok else self.failed).append(entry)

    def genomes(self) -> np.ndarray:
        """Genomes of the successful entries, `[n, n_var]`."""
        return np.array([self.entry_key(e) for e in self.entries], dtype=np.int64).reshape(-1, self.space.n_var)

    def records(self) -> list[dict[str, Any]]:
        """Stats records of the successful entries."""
        return [e.stats for e in self.entries]

    def normalising_records(self, iteration: int) -> list[dict[str, Any]]:
        """The records iteration `iteration` normalises archive-dependent objectives over (`top1_robust`).

        Those evaluated before it; for the initial design (iteration 0), the design itself. A resumed search and
        `post_search.py` thus reproduce exactly the values an uninterrupted search used.
        """
        return [e.stats for e in self.entries if e.iteration < iteration or e.iteration == iteration == 0]

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def to_dict(self) -> dict[str, Any]:
        """JSON record (successes and failures)."""
        return {"entries": [e.to_dict() for e in self.entries], "failed": [e.to_dict() for e in self.failed]}

    @classmethod
    def from_dict(cls, space: SearchSpace, record: dict[str, Any]) -> Archive:
        """Rebuild an archive from `to_dict`'s record, validating every architecture."""

        def entries(items: list[dict[str, Any]]) -> list[Entry]:
            return [Entry(space.validate(i["arch"]), dict(i["stats"]), int(i["iteration"])) for i in items]

        return cls(space, entries(record["entries"]), entries(record.get("failed", [])))
