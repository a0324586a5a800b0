"""Fashion-MNIST from its IDX files (raw or gzipped), parsed with numpy."""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from data.base import Augment, DatasetSplits, TensorImageSet
from data.files import dataset_root
from data.registry import register_dataset
from data.splits import build_splits
from utils.errors import UsageError

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist package
IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
MEAN = (0.2860, 0.2860, 0.2860)
STD = (0.3530, 0.3530, 0.3530)


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise UsageError(f"cannot read IDX file {path}: {err}") from None


def read_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    """The uint8 array of an IDX file (optionally gzipped) whose header must carry `magic` and `ndim` sizes."""
    raw = _read_bytes(path)
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UsageError(f"truncated IDX file {path}: {len(raw)} bytes, expected a {header}-byte header")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise UsageError(f"not an IDX file of the expected kind: {path} (magic number {found}, expected {magic})")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) - header != math.prod(shape):
        raise UsageError(
            f"malformed IDX file {path}: {len(raw) - header} data bytes, expected {math.prod(shape)} for shape {shape}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def _find(root: Path, name: str) -> Path:
    for path in (root / name, root / f"{name}.gz"):
        if path.is_file():
            return path
    raise UsageError(
        f"Fashion-MNIST file not found: {root / name}[.gz] (expected the IDX files {', '.join(FILES)}, optionally .gz)"
    )


def _read_pair(root: Path, images_name: str, labels_name: str) -> TensorImageSet:
    images_path, labels_path = _find(root, images_name), _find(root, labels_name)
    images = read_idx(images_path, IMAGES_MAGIC, 3)
    labels = read_idx(labels_path, LABELS_MAGIC, 1)
    if len(images) != len(labels):
        raise UsageError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels")
    if labels.size and labels.max() >= len(CLASSES):
        raise UsageError(f"malformed labels in {labels_path}: found {labels.max()}, expected 0..{len(CLASSES) - 1}")
    return TensorImageSet.from_grayscale(images, labels)


@register_dataset("fashion_mnist", help="Fashion-MNIST IDX files (default: Debian's copy)")
def fashion_mnist(
    *, data: str | os.PathLike[str] | None = None, vld_size: int | None = None, seed: int = 0
) -> DatasetSplits:
    """Fashion-MNIST (60000 train, 10000 test 28x28 images) from `data`, by default Debian's copy."""
    root = dataset_root("fashion_mnist", data, f"the IDX files {', '.join(FILES)}", default=DEFAULT_ROOT)
    return build_splits(
        "fashion_mnist",
        _read_pair(root, FILES[0], FILES[1]),
        _read_pair(root, FILES[2], FILES[3]),
        n_classes=len(CLASSES),
        vld_size=vld_size,
        nominal_vld_size=5000,
        seed=seed,
        mean=MEAN,
        std=STD,
        augment=Augment(pad_crop=True, hflip=True),
        classes=list(CLASSES),
    )
