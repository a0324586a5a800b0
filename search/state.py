"""The state of a search and its record, `iter_{k}.stats`: the one place that writes, checks and reads that file.

The record is upstream's `archive` (a list of `[arch, err, sec_obj]`, `sec_obj` None for a single objective) and
`candidates`, `hv` and `surrogate`, plus what resuming needs: the objective names, the iteration, the hypervolume
history and its fixed reference point, the evaluation counts, the seed, the configuration and every evaluation
(`Archive.to_dict`, failures included).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from search.archive import Archive
from search.config import SearchConfig
from search.files import read_json
from search_space.base import Arch, InvalidArchitecture, SearchSpace
from utils.errors import UsageError

REQUIRED = ("evaluations", "config", "iteration", "ref_point", "hv_history")
"""The keys a record must hold to be resumed or chosen from."""


@dataclass
class SearchState:
    """Everything that evolves during a search (and is stored in `iter_{k}.stats`)."""

    archive: Archive
    iteration: int = -1
    ref_point: tuple[float, ...] | None = None
    hv_history: list[float] = field(default_factory=list)
    n_evals: list[int] = field(default_factory=list)
    surrogate: dict[str, Any] = field(default_factory=dict)

    def to_record(self, config: SearchConfig, F: np.ndarray, candidates: list[Arch]) -> dict[str, Any]:
        """The `iter_{k}.stats` record of this state, with `F` the archive's objective matrix (top-1 error first)."""
        single = [] if len(config.objectives) > 1 else [None]
        rows = [[e.arch, *values, *single] for e, values in zip(self.archive.entries, F.tolist(), strict=True)]
        return {
            "archive": rows,
            "objectives": list(config.objectives),
            "iteration": self.iteration,
            "candidates": candidates,
            "hv": self.hv_history[-1],
            "hv_history": self.hv_history,
            "n_evals": self.n_evals,
            "surrogate": self.surrogate,
            "ref_point": None if self.ref_point is None else list(self.ref_point),
            "seed": config.seed,
            "config": config.to_dict(),
            "evaluations": self.archive.to_dict(),
        }

    @staticmethod
    def check_record(record: Any, path: str | Path, flag: str = "--resume") -> dict[str, Any]:
        """`record` if it is an `iter_{k}.stats` record; anything else is a `UsageError` naming `flag` and `path`."""
        foreign = f"{flag} file {path} is not an iter_{{k}}.stats written by this search"
        if not isinstance(record, dict):
            raise UsageError(f"{foreign} (it holds a {type(record).__name__}, not a JSON object)")
        missing = [k for k in REQUIRED if k not in record]
        if missing:
            raise UsageError(f"{foreign} (needs {', '.join(REQUIRED)}; {', '.join(missing)} missing)")
        if not isinstance(record["config"], dict):
            raise UsageError(f"{flag} file {path} holds a malformed search configuration (not a JSON object)")
        return record

    @classmethod
    def from_record(cls, record: Any, space: SearchSpace, path: str | Path, flag: str = "--resume") -> SearchState:
        """The state `to_record` stored, its archive validated in `space`; a bad record is a `UsageError`.

        The error names `flag` and `path` (the file the record came from) in one line.
        """
        record = cls.check_record(record, path, flag)
        try:
            archive = Archive.from_dict(space, record["evaluations"])
        except (InvalidArchitecture, AttributeError, KeyError, TypeError, ValueError) as err:
            raise UsageError(f"{flag} file {path} holds an invalid archive: {err}") from None
        try:
            return cls(
                archive=archive,
                iteration=int(record["iteration"]),
                ref_point=tuple(float(v) for v in record["ref_point"]),
                hv_history=[float(v) for v in record["hv_history"]],
                n_evals=[int(v) for v in record.get("n_evals", [])],
                surrogate=dict(record.get("surrogate", {})),
            )
        except (TypeError, ValueError) as err:
            raise UsageError(f"{flag} file {path} holds a malformed search state: {err}") from None


def read_record(path: str | Path, flag: str = "--resume") -> dict[str, Any]:
    """The record of an `iter_{k}.stats` file; a missing, unreadable or foreign file is a `UsageError` naming `flag`."""
    return SearchState.check_record(read_json(Path(path), flag), path, flag)
