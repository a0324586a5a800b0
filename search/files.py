"""The files a search writes (upstream-compatible) and reads back to resume, all written atomically."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from evaluator.base import EvalResult
from search.archive import Archive
from search_space.base import Arch, InvalidArchitecture, SearchSpace
from utils.errors import UsageError
from utils.io import atomic_write, write_json

CONFIG_FILE = "search.json"


def stats_path(save: Path, iteration: int) -> Path:
    """`save/iter_{k}.stats`."""
    return save / f"iter_{iteration}.stats"


def candidate_dir(save: Path, iteration: int, index: int) -> Path:
    """`save/iter_{k}/net_{i}`, where the evaluator writes `net_{i}.subnet`, `net_{i}.stats`, `ckpt.pth`."""
    return save / f"iter_{iteration}" / f"net_{index}"


def finished_iterations(save: Path) -> list[int]:
    """Iterations with a stats file in `save`, ascending."""
    found = []
    for path in save.glob("iter_*.stats"):
        suffix = path.stem.removeprefix("iter_")
        if suffix.isdigit():
            found.append(int(suffix))
    return sorted(found)


def reusable_result(out_dir: Path, arch: Arch) -> EvalResult | None:
    """The result already written in `out_dir` for `arch` by an interrupted run, if there is a complete one."""
    stem = out_dir.name
    try:
        if json.loads((out_dir / f"{stem}.subnet").read_text()) != arch:
            return None
        stats = json.loads((out_dir / f"{stem}.stats").read_text())
    except (OSError, ValueError):
        return None
    if stats.get("status") != "ok":
        return None
    known = {"top1", "params", "macs", "activations", "status", "wall_time_s"}
    return EvalResult(
        arch=arch,
        status="ok",
        top1=stats["top1"],
        params=stats["params"],
        macs=stats["macs"],
        activations=stats["activations"],
        extras={k: v for k, v in stats.items() if k not in known},
        wall_time_s=stats.get("wall_time_s", 0.0),
    )


def record_failures(save: Path, iteration: int, results: list[EvalResult], dirs: list[Path]) -> None:
    """Copy each failed evaluation's files into `save/failed/iter_{k}_net_{i}/` (architecture and error text)."""
    for result, out in zip(results, dirs, strict=True):
        if result.ok:
            continue
        target = save / "failed" / f"iter_{iteration}_{out.name}"
        target.mkdir(parents=True, exist_ok=True)
        for name in (f"{out.name}.subnet", f"{out.name}.error"):
            if (out / name).exists():
                shutil.copyfile(out / name, target / name)


def iteration_record(
    archive: Archive,
    objectives: tuple[str, ...],
    objective_values: list[list[float]],
    **fields: Any,
) -> dict[str, Any]:
    """The `iter_{k}.stats` JSON: upstream's `archive` as `[arch, err, sec_obj]` plus everything to resume."""
    rows = [
        [e.arch, *values] + ([] if len(objectives) > 1 else [None])
        for e, values in zip(archive.entries, objective_values, strict=True)
    ]
    return {"archive": rows, "objectives": list(objectives), **fields, "evaluations": archive.to_dict()}


def write_iteration(save: Path, iteration: int, record: dict[str, Any]) -> Path:
    """Write `iter_{k}.stats` atomically."""
    return write_json(stats_path(save, iteration), record)


def write_archive_csv(save: Path, archive: Archive) -> Path:
    """`save/archive.csv`: one row per evaluated architecture (failures included), written atomically."""
    rows = [
        {
            "iteration": e.iteration,
            **{k: v for k, v in e.stats.items() if k != "error"},
            "arch": json.dumps(e.arch),
            "error": e.stats.get("error"),
        }
        for e in [*archive.entries, *archive.failed]
    ]
    frame = pd.DataFrame(rows)
    return atomic_write(save / "archive.csv", lambda f: frame.to_csv(f, index=False))


def read_resume(path: str | Path, space: SearchSpace) -> tuple[dict[str, Any], Archive]:
    """The record of `iter_{k}.stats` and its archive; an unreadable or foreign file is a `UsageError`."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"--resume file not found: {path}") from None
    except (OSError, ValueError) as err:
        raise UsageError(f"--resume file {path} is not readable JSON: {err}") from None
    needed = ("evaluations", "config", "iteration", "ref_point", "hv_history")
    if not isinstance(record, dict) or any(k not in record for k in needed):
        raise UsageError(f"--resume file {path} is not an iter_{{k}}.stats written by this search (needs {needed})")
    try:
        archive = Archive.from_dict(space, record["evaluations"])
    except (InvalidArchitecture, KeyError, TypeError, ValueError) as err:
        raise UsageError(f"--resume file {path} holds an invalid archive: {err}") from None
    return record, archive
