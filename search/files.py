"""The files a search writes (upstream-compatible) and reads back, all written atomically.

`iter_{k}.stats` is `search/state.py`'s, `net_{i}.subnet` and `net_{i}.stats` are `evaluator/base.py`'s
(`write_result`, `read_result`); this module places them and writes or reads the rest.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from evaluator.base import EvalResult, read_result
from search.archive import Archive, Entry
from search.config import SearchConfig
from search_space.base import Arch, InvalidArchitecture, SearchSpace, read_subnet
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


def reusable_result(out_dir: Path, arch: Arch) -> EvalResult | None:
    """The result already written in `out_dir` for `arch` by an interrupted run, if there is a complete one."""
    try:
        result = read_result(out_dir)
    except UsageError:
        return None
    return result if result.ok and result.arch == arch else None


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


def scan_archive(save: Path, space: SearchSpace) -> Archive:
    """The archive rebuilt from the net folders `save/iter_{k}/net_{i}`, in evaluation order.

    Only folders whose `net_{i}.stats` is readable and records status ok count; any other folder (a failed
    evaluation, an unfinished or corrupt one) is skipped with a warning giving the reason, and so is a repeat of an
    architecture already found. Failures are not rebuilt (`save/failed/` is not read).
    """
    archive = Archive(space)
    seen: set[tuple[int, ...]] = set()
    for iteration, folder in net_folders(save):
        try:
            result = read_result(folder, space)
        except InvalidArchitecture as err:
            log.warning("skipping %s: invalid architecture: %s", folder, err)
            continue
        except UsageError as err:
            failed = (folder / f"{folder.name}.error").is_file()
            log.warning("skipping %s: %s", folder, "failed evaluation" if failed else err)
            continue
        if not result.ok:
            log.warning("skipping %s: failed evaluation", folder)
            continue
        key = archive.key(result.arch)
        if key in seen:
            log.warning("skipping %s: architecture already found in an earlier folder", folder)
            continue
        seen.add(key)
        archive.add([result], iteration)
    return archive


def find_net_folder(save: Path, entry: Entry, archive: Archive) -> Path | None:
    """The folder `save/iter_{k}/net_{i}` where `entry` of `archive` was evaluated, or None when it is not there.

    A folder whose `net_{i}.subnet` is unreadable or outside the space is skipped with a warning giving the reason.
    """
    key = archive.key(entry.arch)
    for _, folder in net_folders(save, entry.iteration):
        try:
            if archive.key(read_subnet(folder / f"{folder.name}.subnet", archive.space)) == key:
                return folder
        except UsageError as err:
            log.warning("skipping %s: %s", folder, err)
    return None


def read_json(path: Path, flag: str) -> Any:
    """The JSON in `path`; a missing or unreadable file is a `UsageError` naming `flag`."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{flag} file not found: {path}") from None
    except (OSError, ValueError) as err:
        raise UsageError(f"{flag} file {path} is not readable JSON: {err}") from None


def search_config(record: Any, path: Path) -> SearchConfig:
    """The `SearchConfig` recorded in `path` (`search.json`, or an `iter_{k}.stats`); a malformed one: `UsageError`."""
    try:
        return SearchConfig.from_dict(record)
    except (AttributeError, TypeError) as err:
        raise UsageError(f"{path} holds a malformed search configuration: {err}") from None
