"""Atomic writes (a crash never leaves a half-written results file behind), and reading JSON records back."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from utils.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[Any]], None], binary: bool = False) -> Path:
    """Call `write(file)` on a temporary file next to `path`, then rename it onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files private; results get the usual permissions
    try:
        with os.fdopen(fd, "wb" if binary else "w") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextmanager
def atomic_folder(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder next to `path` to fill; on success it replaces `path` (whatever was there)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write `obj` as indented JSON, atomically."""
    return atomic_write(path, lambda f: json.dump(obj, f, indent=2, sort_keys=False))


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write `text`, atomically."""
    return atomic_write(path, lambda f: f.write(text))


def write_csv(path: str | os.PathLike[str], frame: pd.DataFrame) -> Path:
    """Write `frame` as CSV without its index, atomically."""
    return atomic_write(path, lambda f: frame.to_csv(f, index=False))


def atomic_torch_save(path: str | os.PathLike[str], obj: Any) -> Path:
    """`torch.save` to `path`, atomically."""
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f), binary=True)


def read_json_object(path: str | os.PathLike[str], what: str, noun: str) -> dict[str, Any]:
    """The JSON object in the `what` file at `path` (a subnet, stats... file); otherwise a `UsageError`.

    A missing or unreadable file, or JSON that is not an object (`noun`: what it should have been), is one line
    naming the path and the reason.
    """
    path = Path(path)
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{what} file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"{path} is not a readable JSON {what} file: {err}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{path} holds a {type(value).__name__}, not {noun} (a JSON object)")
    return value
