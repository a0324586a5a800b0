"""The files a search writes (upstream-compatible) and reads back to resume, all written atomically."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from evaluator.base import EvalResult
from search.archive import Archive, Entry
from search.config import SearchConfig
from search_space.base import Arch, InvalidArchitecture, SearchSpace
from utils.errors import UsageError
from utils.io import write_csv, write_json

log = logging.getLogger(__name__)

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
    rows = [{**entry_row(e), "error": e.stats.get("error")} for e in [*archive.entries, *archive.failed]]
    return write_csv(save / "archive.csv", pd.DataFrame(rows))


def entry_row(entry: Entry) -> dict[str, Any]:
    """One CSV row of an evaluated architecture: its iteration, its stats (no error text), its arch as JSON."""
    stats = {k: v for k, v in entry.stats.items() if k != "error"}
    return {"iteration": entry.iteration, **stats, "arch": json.dumps(entry.arch)}


def read_stats(path: str | Path, flag: str = "--resume") -> dict[str, Any]:
    """The record of an `iter_{k}.stats` file; a missing, unreadable or foreign file is a `UsageError` naming `flag`."""
    path = Path(path)
    record = _read_json(path, flag)
    needed = ("evaluations", "config", "iteration", "ref_point", "hv_history")
    if not isinstance(record, dict) or any(k not in record for k in needed):
        raise UsageError(f"{flag} file {path} is not an iter_{{k}}.stats written by this search (needs {needed})")
    return record


def stats_archive(record: dict[str, Any], space: SearchSpace, path: str | Path, flag: str = "--resume") -> Archive:
    """The archive stored in `read_stats`'s record; an invalid one is a `UsageError` naming `flag` and `path`."""
    try:
        return Archive.from_dict(space, record["evaluations"])
    except (InvalidArchitecture, KeyError, TypeError, ValueError) as err:
        raise UsageError(f"{flag} file {path} holds an invalid archive: {err}") from None


def read_resume(path: str | Path, space: SearchSpace) -> tuple[dict[str, Any], Archive]:
    """The record of `iter_{k}.stats` and its archive; an unreadable or foreign file is a `UsageError`."""
    record = read_stats(path)
    return record, stats_archive(record, space, path)


def _numbered(folder: Path, prefix: str) -> list[tuple[int, Path]]:
    """`(k, path)` of the sub-folders of `folder` named `{prefix}{k}`, by ascending k."""
    found = []
    for path in folder.glob(f"{prefix}*"):
        suffix = path.name.removeprefix(prefix)
        if suffix.isdigit() and path.is_dir():
            found.append((int(suffix), path))
    return sorted(found)


def net_folders(save: Path, iteration: int | None = None) -> list[tuple[int, Path]]:
    """`(k, folder)` of every `save/iter_{k}/net_{i}` (of iteration `iteration` only, if given), by k then i."""
    return [
        (k, net)
        for k, folder in _numbered(save, "iter_")
        if iteration is None or k == iteration
        for _, net in _numbered(folder, "net_")
    ]


def read_subnet(folder: Path) -> Arch | None:
    """The architecture in `folder/{name}.subnet`, or None when it is missing or not JSON."""
    try:
        return json.loads((folder / f"{folder.name}.subnet").read_text())
    except (OSError, ValueError):
        return None


def scan_archive(save: Path, space: SearchSpace) -> Archive:
    """The archive rebuilt from the net folders `save/iter_{k}/net_{i}`, in evaluation order.

    Only folders whose `net_{i}.stats` is readable and records status ok count; any other folder (a failed
    evaluation, an unfinished or corrupt one) is skipped with a warning, and so is a repeat of an architecture
    already found. Failures are not rebuilt (`save/failed/` is not read).
    """
    archive = Archive(space)
    seen: set[tuple[int, ...]] = set()
    for iteration, folder in net_folders(save):
        arch = read_subnet(folder)
        try:
            result = None if arch is None else reusable_result(folder, space.validate(arch))
        except InvalidArchitecture as err:
            log.warning("skipping %s: invalid architecture: %s", folder, err)
            continue
        if result is None:
            failed = (folder / f"{folder.name}.error").is_file()
            log.warning("skipping %s: %s", folder, "failed evaluation" if failed else "no readable subnet and ok stats")
            continue
        key = archive.key(result.arch)
        if key in seen:
            log.warning("skipping %s: architecture already found in an earlier folder", folder)
            continue
        seen.add(key)
        archive.add([result], iteration)
    return archive


def find_net_folder(save: Path, entry: Entry, archive: Archive) -> Path | None:
    """The folder `save/iter_{k}/net_{i}` where `entry` of `archive` was evaluated, or None when it is not there."""
    key = archive.key(entry.arch)
    for _, folder in net_folders(save, entry.iteration):
        arch = read_subnet(folder)
        try:
            if arch is not None and archive.key(arch) == key:
                return folder
        except InvalidArchitecture:
            continue
    return None


def read_search(expr: str | Path, scan: bool = False) -> tuple[SearchConfig, Archive, Path]:
    """The configuration, archive and folder of a finished search, for `post_search.py --expr`.

    `expr` is an `iter_{k}.stats` file, or with `scan` the search folder, whose archive is rebuilt from its net
    folders (`scan_archive`) and whose configuration is its `search.json`. Anything unreadable is a `UsageError`.
    """
    expr = Path(expr)
    if scan:
        if not expr.is_dir():
            raise UsageError(f"--get_archive rebuilds the archive of a search folder: --expr {expr} is not a folder")
        config = _search_config(_read_json(expr / CONFIG_FILE, "--expr"), expr / CONFIG_FILE)
        archive = scan_archive(expr, config.space())
        if not len(archive):
            raise UsageError(f"--expr {expr} holds no successful evaluation in iter_*/net_*/")
        return config, archive, expr
    if expr.is_dir():
        raise UsageError(f"--expr {expr} is a folder: give its iter_{{k}}.stats, or --get_archive to rebuild it")
    record = read_stats(expr, "--expr")
    config = _search_config(record["config"], expr)
    return config, stats_archive(record, config.space(), expr, "--expr"), expr.parent


def _read_json(path: Path, flag: str) -> Any:
    """The JSON in `path`; a missing or unreadable file is a `UsageError` naming `flag`."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{flag} file not found: {path}") from None
    except (OSError, ValueError) as err:
        raise UsageError(f"{flag} file {path} is not readable JSON: {err}") from None


def _search_config(record: Any, path: Path) -> SearchConfig:
    """The `SearchConfig` recorded in `path`; a malformed one is a `UsageError`."""
    try:
        return SearchConfig.from_dict(record)
    except (AttributeError, TypeError) as err:
        raise UsageError(f"{path} holds a malformed search configuration: {err}") from None
