"""Stratified hold-out splits and the assembly of a `DatasetSplits` with its validation set carved from train.

Default validation size: each dataset has a nominal size (digits 300, Fashion-MNIST, CIFAR and SVHN 5000, ImageNet
10000 or 10% of its training images if that is fewer). When the training set is a reduced copy whose size is at most
twice the nominal size, the default becomes 10% of the training images instead. Either way it is at least one image
per class.

A supernet trains on the training images left after its validation split, so whoever validates its subnets must
carve the same split (`SplitSpec`, recorded in the supernet's card and in the weights extracted from it), whatever
its own seed: `validation_split` chooses between a recorded split and one carved with a run's own `--seed`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from data.base import Augment, DatasetSplits, ImageSet
from utils.errors import UsageError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitSpec:
    """A validation split: `vld_size` images of `dataset`'s training set, drawn with `seed`.

    `vld_size` None is the dataset's default size; `source` says where the split was read (`its card <path>`, a
    `net.inherited`), for messages.
    """

    dataset: str
    seed: int
    vld_size: int | None
    source: str = "--seed"

    def record(self) -> dict[str, Any]:
        """`{"dataset", "seed", "vld_size"}`, as stored in `net.inherited`, `ckpt.pth` and `net.stats`."""
        return {"dataset": self.dataset, "seed": self.seed, "vld_size": self.vld_size}

    @classmethod
    def from_record(cls, record: object, source: str) -> SplitSpec:
        """The split a `record()` holds; anything else is a `UsageError` naming `source`."""
        fields = record if isinstance(record, dict) else {}
        if not (
            isinstance(fields.get("dataset"), str) and all(_is_int(fields.get(key)) for key in ("seed", "vld_size"))
        ):
            raise UsageError(
                f"{source} records a malformed validation split {record!r}; expected dataset, seed and vld_size"
            )
        return cls(fields["dataset"], int(fields["seed"]), int(fields["vld_size"]), source)

    def describe(self) -> str:
        """E.g. `300 images, seed 0, from its card supernets/weights/x.json`."""
        return f"{self.vld_size} images, seed {self.seed}, from {self.source}"


def validation_split(
    recorded: SplitSpec | None, *, dataset: str, seed: int, vld_size: int | None, owner: str
) -> SplitSpec:
    """The split to validate on: `recorded` when it is of `dataset`, else one carved with `seed` and `vld_size`.

    `recorded` holds the images `owner`'s weights never trained on; an explicit `vld_size` other than its size is a
    `UsageError` (`owner` names the weights in it, e.g. "the supernet's").
    """
    if recorded is None or recorded.dataset != dataset:
        return SplitSpec(dataset, seed, vld_size)
    if vld_size is not None and vld_size != recorded.vld_size:
        raise UsageError(
            f"--vld_size {vld_size} differs from {owner} validation split ({recorded.describe()}); leave it out"
        )
    return recorded


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def stratified_holdout(labels: np.ndarray, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split indices `0..N-1` into sorted `(kept, held_out)`, `size` held out in proportion to each class."""
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    quota = size * counts / counts.sum()
    taken = np.floor(quota).astype(np.int64)
    largest_remainders = np.argsort(taken - quota, kind="stable")
    taken[largest_remainders[: size - taken.sum()]] += 1
    held_out = [
        rng.permutation(np.flatnonzero(labels == cls))[:k] for cls, k in zip(classes, taken, strict=True) if k > 0
    ]
    held = np.sort(np.concatenate(held_out)) if held_out else np.empty(0, dtype=np.int64)
    kept = np.setdiff1d(np.arange(len(labels)), held, assume_unique=True)
    return kept, held


def resolve_vld_size(vld_size: int | None, *, name: str, n_train: int, n_classes: int, nominal: int) -> int:
    """The validation size to carve from `n_train` images: `vld_size`, or the dataset default when None."""
    if vld_size is None:
        vld_size = nominal
        if 2 * nominal >= n_train:
            vld_size = n_train // 10
            logger.info("%s: only %d training images, validation defaults to 10%% of them", name, n_train)
        vld_size = max(vld_size, n_classes)
    if not _is_int(vld_size):
        raise UsageError(f"vld_size must be an integer, got {vld_size!r}")
    if not n_classes <= vld_size < n_train:
        raise UsageError(
            f"vld_size {vld_size} is out of range for {name}: need at least {n_classes} (one per class) "
            f"and fewer than its {n_train} training images"
        )
    return int(vld_size)


def build_splits(
    name: str,
    train: ImageSet,
    test: ImageSet,
    *,
    n_classes: int,
    vld_size: int | None,
    nominal_vld_size: int,
    seed: int,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    augment: Augment,
    classes: list[str] | None,
) -> DatasetSplits:
    """A `DatasetSplits` whose validation set is a stratified sample of `train` drawn with `seed`."""
    size = resolve_vld_size(vld_size, name=name, n_train=len(train), n_classes=n_classes, nominal=nominal_vld_size)
    kept, held = stratified_holdout(train.labels.numpy(), size, np.random.default_rng(seed))
    splits = DatasetSplits(
        name=name,
        n_classes=n_classes,
        train=train.subset(kept),
        valid=train.subset(held),
        test=test,
        mean=mean,
        std=std,
        augment=augment,
        classes=classes,
    )
    logger.info(
        "%s: %d train, %d validation, %d test images, %d classes",
        name,
        len(splits.train),
        len(splits.valid),
        len(splits.test),
        n_classes,
    )
    return splits
