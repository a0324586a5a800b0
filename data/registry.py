"""The dataset registry: `register_dataset` records a loader, `create_dataset` builds its splits by name."""

from __future__ import annotations

import inspect
import os

from data.base import DatasetSplits
from utils.errors import UsageError
from utils.registry import Registry

DATASETS = Registry[DatasetSplits]("dataset")
register_dataset = DATASETS.register


def create_dataset(
    name: str,
    *,
    data: str | os.PathLike[str] | None = None,
    vld_size: int | None = None,
    seed: int = 0,
    **kwargs: object,
) -> DatasetSplits:
    """Load dataset `name` from `data`, with `vld_size` validation images carved from train with `seed`.

    Extra keyword arguments are dataset options (e.g. `corruption`, `severity` for `cifar10c`).
    """
    factory = DATASETS.get(name)
    options = {"data": data, "vld_size": vld_size, "seed": seed, **kwargs}
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as err:
        raise UsageError(f"invalid options for dataset {name!r}: {err}") from None
    return factory(**options)


def list_datasets(aliases: bool = True) -> list[str]:
    """Every registered dataset name, sorted (aliases included unless `aliases=False`)."""
    return DATASETS.names(aliases)
