"""The `Evaluator` interface: turning a batch of architectures into measured numbers (`EvalResult`s)."""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from search_space.base import Arch, SearchSpace, read_subnet
from utils.errors import UsageError
from utils.io import read_json_object, write_json, write_text

if TYPE_CHECKING:
    from search.config import SearchConfig

Status = Literal["ok", "failed"]

_NUMBERS = ("top1", "params", "macs", "activations")
_RECORD_KEYS = frozenset({*_NUMBERS, "status", "wall_time_s", "error"})
"""The keys of a `net_{i}.stats` record that are not extras."""


@dataclass
class EvalResult:
    """What one evaluation measured: top-1 (validation, percent), costs in millions, extras, time and status.

    A failed evaluation carries `status="failed"` and the error text; its numbers stay `None`, never made up.
    """

    arch: Arch
    status: Status
    top1: float | None = None
    params: float | None = None
    macs: float | None = None
    activations: float | None = None
    extras: dict[str, float] = field(default_factory=dict)
    wall_time_s: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the evaluation succeeded."""
        return self.status == "ok"

    def stats(self) -> dict[str, object]:
        """The `net_{i}.stats` record (upstream's keys plus the extras, status and time)."""
        record: dict[str, object] = {
            "top1": self.top1,
            "params": self.params,
            "macs": self.macs,
            "activations": self.activations,
            **self.extras,
            "status": self.status,
            "wall_time_s": round(self.wall_time_s, 3),
        }
        if self.error is not None:
            record["error"] = self.error
        return record

    @classmethod
    def from_stats(cls, arch: Arch, stats: Mapping[str, Any]) -> EvalResult:
        """The result whose `stats()` record is `stats`: the inverse of `stats`.

        Every key other than the measured numbers, status, time and error is an extra, as `stats` writes them. A
        record without the numbers or the status, or with another status, is a `ValueError`.
        """
        missing = [k for k in (*_NUMBERS, "status") if k not in stats]
        if missing:
            raise ValueError(f"the stats record lacks {', '.join(missing)}")
        if stats["status"] not in ("ok", "failed"):
            raise ValueError(f"the stats record has status {stats['status']!r}, not 'ok' or 'failed'")
        return cls(
            arch=arch,
            status=stats["status"],
            **{k: stats[k] for k in _NUMBERS},
            extras={k: v for k, v in stats.items() if k not in _RECORD_KEYS},
            wall_time_s=stats.get("wall_time_s", 0.0),
            error=stats.get("error"),
        )

    @classmethod
    def failure(cls, arch: Arch, error: BaseException | str, wall_time_s: float = 0.0) -> EvalResult:
        """A failed result carrying the error's type and message."""
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        return cls(arch=arch, status="failed", error=text, wall_time_s=wall_time_s)


def write_result(result: EvalResult, out_dir: str | os.PathLike[str]) -> None:
    """Write `net_{i}.subnet` and `net_{i}.stats` (or `net_{i}.error` for a failure) into `out_dir`, atomically."""
    out = Path(out_dir)
    stem = out.name
    write_text(out / f"{stem}.subnet", json.dumps(result.arch))
    if result.ok:
        write_json(out / f"{stem}.stats", result.stats())
    else:
        write_text(out / f"{stem}.error", (result.error or "unknown error") + "\n")


def read_result(out_dir: str | os.PathLike[str], space: SearchSpace | None = None) -> EvalResult:
    """The result `write_result` wrote into `out_dir` as `net_{i}.subnet` and `net_{i}.stats` (canonical in `space`).

    A missing or unreadable file, or a stats record that is not one, is a `UsageError` naming the path and the
    reason; an architecture outside `space` is an `InvalidArchitecture`. A failure (only `net_{i}.error`) is not
    read back: its missing stats file is the reason given.
    """
    out = Path(out_dir)
    arch = read_subnet(out / f"{out.name}.subnet", space)
    path = out / f"{out.name}.stats"
    stats = read_json_object(path, "stats", "a stats record")
    try:
        return EvalResult.from_stats(arch, stats)
    except ValueError as err:
        raise UsageError(f"{path}: {err}") from None


class Evaluator(ABC):
    """Measures architectures; batch-oriented so that a backend can spread a batch over workers."""

    name: str = ""
    measures: ClassVar[tuple[str, ...]] = ("top1",)
    """Record keys this evaluator measures that no cost function computes (objectives and constraints on them)."""
    refines: ClassVar[bool] = False
    """Whether it refines candidates with `--inner_search` (dnas.inner) before measuring them."""
    switches: ClassVar[Mapping[str, str]] = {}
    """Keys this evaluator measures only when a flag asks for them, with the flag (`robustness`: --eval_robust)."""

    @classmethod
    def writes_networks(cls, search: SearchConfig) -> bool:
        """Whether every evaluation writes `ckpt.pth` with a network its architecture alone does not describe."""
        return False

    @classmethod
    def measured(cls, search: SearchConfig) -> tuple[str, ...]:
        """The record keys an evaluation measures under a search's settings: `measures` plus those switched on."""
        return cls.measures

    @classmethod
    @abstractmethod
    def arguments(cls, search: SearchConfig) -> dict[str, object]:
        """The picklable constructor arguments for a search's settings, checked before any evaluation starts."""

    @abstractmethod
    def evaluate(self, archs: Sequence[Arch], out_dirs: Sequence[str | os.PathLike[str]]) -> list[EvalResult]:
        """One `EvalResult` per architecture, in order; each also written into its `out_dirs` entry."""


class OneByOneEvaluator(Evaluator):
    """An evaluator that measures each architecture of a batch in turn (`evaluate_one`)."""

    def evaluate(self, archs: Sequence[Arch], out_dirs: Sequence[str | os.PathLike[str]]) -> list[EvalResult]:
        """Evaluate each architecture in turn; a failure is recorded and the rest of the batch goes on."""
        if len(archs) != len(out_dirs):
            raise ValueError(f"{len(archs)} architectures but {len(out_dirs)} output folders")
        return [self.evaluate_one(arch, Path(out)) for arch, out in zip(archs, out_dirs, strict=True)]

    @abstractmethod
    def evaluate_one(self, arch: Arch, out_dir: Path) -> EvalResult:
        """Measure one architecture, write its files into `out_dir` (a failure as `EvalResult.failure`)."""
