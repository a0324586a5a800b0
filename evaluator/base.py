"""The `Evaluator` interface: turning a batch of architectures into measured numbers (`EvalResult`s)."""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from search_space.base import Arch
from utils.io import write_json, write_text

Status = Literal["ok", "failed"]


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


class Evaluator(ABC):
    """Measures architectures; batch-oriented so that a backend can spread a batch over workers."""

    name: str = ""

    @abstractmethod
    def evaluate(self, archs: Sequence[Arch], out_dirs: Sequence[str | os.PathLike[str]]) -> list[EvalResult]:
        """One `EvalResult` per architecture, in order; each also written into its `out_dirs` entry."""
