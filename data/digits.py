"""The embedded default dataset: scikit-learn's bundled 8x8 handwritten digits, no download needed."""

from __future__ import annotations

import logging
import os

import numpy as np
from sklearn.datasets import load_digits

from data.base import Augment, DatasetSplits, TensorImageSet
from data.registry import register_dataset
from data.splits import build_splits, stratified_holdout

logger = logging.getLogger(__name__)

TEST_SIZE = 360
TEST_SEED = 20_240_601  # fixed, so the test split is the same whatever `seed` a run uses
MEAN = (0.3053, 0.3053, 0.3053)
STD = (0.3759, 0.3759, 0.3759)


@register_dataset("digits", help="scikit-learn's 8x8 digits, embedded")
def digits(*, data: str | os.PathLike[str] | None = None, vld_size: int | None = None, seed: int = 0) -> DatasetSplits:
    """1797 digits (values 0..16 scaled to 0..255); a fixed stratified test split of 360, validation from the rest."""
    if data is not None:
        logger.warning("digits is bundled with scikit-learn; ignoring data=%s", data)
    bunch = load_digits()
    images = np.round(bunch.images * (255 / 16)).astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    everything = TensorImageSet.from_grayscale(images, labels)
    rest, test = stratified_holdout(labels, TEST_SIZE, np.random.default_rng(TEST_SEED))
    return build_splits(
        "digits",
        everything.subset(rest),
        everything.subset(test),
        n_classes=10,
        vld_size=vld_size,
        nominal_vld_size=300,
        seed=seed,
        mean=MEAN,
        std=STD,
        augment=Augment(pad_crop=True),
        classes=[str(d) for d in range(10)],
    )
