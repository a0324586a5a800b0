"""SVHN (cropped digits) from its MATLAB files `train_32x32.mat` and `test_32x32.mat`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.io
import torch

from data.base import Augment, DatasetSplits, TensorImageSet
from data.files import dataset_root, require_file
from data.registry import register_dataset
from data.splits import build_splits
from utils.errors import UsageError

MEAN = (0.4377, 0.4438, 0.4728)
STD = (0.1980, 0.2010, 0.1970)
FILES = ("train_32x32.mat", "test_32x32.mat")
EXPECTED = "'X' uint8 [32, 32, 3, N] and 'y' [N, 1] labels 1..10 (10 is the digit 0)"


def read_svhn(path: Path) -> TensorImageSet:
    """The images of one SVHN .mat file, label 10 mapped to digit 0."""
    require_file(path, f"an SVHN .mat file with {EXPECTED}")
    try:
        content = scipy.io.loadmat(path)
    except Exception as err:  # scipy raises many types on a damaged file; all mean the same to the user
        raise UsageError(f"malformed SVHN file {path}: cannot read it as a .mat file ({err})") from None
    missing = [key for key in ("X", "y") if key not in content]
    if missing:
        raise UsageError(f"malformed SVHN file {path}: missing {missing[0]!r} (expected {EXPECTED})")
    images, labels = content["X"], content["y"]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[:3] != (32, 32, 3):
        raise UsageError(f"malformed SVHN file {path}: 'X' is {images.dtype} {images.shape}, expected {EXPECTED}")
    if labels.size != images.shape[3] or not np.issubdtype(labels.dtype, np.number):
        raise UsageError(f"malformed SVHN file {path}: 'y' has {labels.size} entries, expected {EXPECTED}")
    labels = labels.reshape(-1).astype(np.int64)
    if labels.size and not 1 <= labels.min() <= labels.max() <= 10:
        raise UsageError(f"malformed SVHN file {path}: labels outside 1..10 (expected {EXPECTED})")
    return TensorImageSet(
        torch.from_numpy(np.ascontiguousarray(images.transpose(3, 2, 0, 1))), torch.from_numpy(labels % 10)
    )


@register_dataset("svhn", help="SVHN .mat files")
def svhn(*, data: str | os.PathLike[str] | None = None, vld_size: int | None = None, seed: int = 0) -> DatasetSplits:
    """SVHN (73257 train, 26032 test 32x32 images; the extra set is not used) from `data`."""
    root = dataset_root("svhn", data, " and ".join(FILES))
    return build_splits(
        "svhn",
        read_svhn(root / FILES[0]),
        read_svhn(root / FILES[1]),
        n_classes=10,
        vld_size=vld_size,
        nominal_vld_size=5000,
        seed=seed,
        mean=MEAN,
        std=STD,
        augment=Augment(pad_crop=True),
        classes=[str(d) for d in range(10)],
    )
