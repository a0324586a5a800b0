"""Stratified hold-out splits and the assembly of a `DatasetSplits` with its validation set carved from train.

Default validation size: each dataset has a nominal size (digits 300, Fashion-MNIST, CIFAR and SVHN 5000, ImageNet
10000 or 10% of its training images if that is fewer). When the training set is a reduced copy whose size is at most
twice the nominal size, the default becomes 10% of the training images instead. Either way it is at least one image
per class.
"""

from __future__ import annotations

import logging

import numpy as np

from data.base import Augment, DatasetSplits, ImageSet
from utils.errors import UsageError

logger = logging.getLogger(__name__)


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
    if isinstance(vld_size, bool) or not isinstance(vld_size, int | np.integer):
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
