"""Registry of exporters; `export_model(format, ...)` is the one way to write a network in a deployment format.

An exporter is registered under its format name, which is also the suffix of the files it writes, and is called
with keyword arguments `model` (an `nn.Module`), `path` (where to write) and `resolution` (the input size); it
writes the file atomically and returns its path.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from utils.registry import Registry

EXPORTERS: Registry[Path] = Registry("export format")
register_exporter = EXPORTERS.register


def export_model(fmt: str, model: nn.Module, path: str | os.PathLike[str], resolution: int) -> Path:
    """Write `model`, which takes `[N, 3, resolution, resolution]` images, to `path` in format `fmt`."""
    return EXPORTERS.create(fmt, model=model, path=Path(path), resolution=resolution)


def list_formats() -> list[str]:
    """Names of every registered export format."""
    return EXPORTERS.names()
