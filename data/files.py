"""Locating dataset files on disk: every missing path is a one-line `UsageError` naming it."""

from __future__ import annotations

import os
from pathlib import Path

from utils.errors import UsageError


def dataset_root(name: str, data: str | os.PathLike[str] | None, expected: str, default: Path | None = None) -> Path:
    """The existing directory `data` (or `default` when `data` is None) holding dataset `name`."""
    if data is None:
        if default is None:
            raise UsageError(f"dataset {name!r} needs a data directory (--data) containing {expected}")
        path = default
    else:
        path = Path(data).expanduser()
    if not path.is_dir():
        raise UsageError(f"{name} data directory not found: {path} (--data: a directory containing {expected})")
    return path


def require_dir(path: Path, expected: str) -> Path:
    """`path` itself, which must be an existing directory holding `expected`."""
    if not path.is_dir():
        raise UsageError(f"directory not found: {path} (expected {expected})")
    return path


def require_file(path: Path, expected: str) -> Path:
    """`path` itself, which must be an existing file of the `expected` kind."""
    if not path.is_file():
        raise UsageError(f"file not found: {path} (expected {expected})")
    return path
