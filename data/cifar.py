"""CIFAR-10 and CIFAR-100 from their python-format pickles (torchvision's on-disk layout)."""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from data.base import Augment, DatasetSplits, TensorImageSet
from data.files import dataset_root
from data.registry import register_dataset
from data.splits import build_splits
from utils.errors import UsageError

AUGMENT = Augment(pad_crop=True, hflip=True)


@dataclass(frozen=True)
class CifarLayout:
    """Where a CIFAR variant keeps its files and under which keys."""

    title: str
    folder: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    label_key: str
    names_key: str
    n_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def describe(self) -> str:
        """The expected files, for error messages."""
        files = ", ".join((*self.train_files, self.test_file, self.meta_file))
        return f"the {self.title} python-format files {files} (in the directory or its {self.folder}/)"


CIFAR10 = CifarLayout(
    title="CIFAR-10",
    folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_file="test_batch",
    meta_file="batches.meta",
    label_key="labels",
    names_key="label_names",
    n_classes=10,
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
)
CIFAR100 = CifarLayout(
    title="CIFAR-100",
    folder="cifar-100-python",
    train_files=("train",),
    test_file="test",
    meta_file="meta",
    label_key="fine_labels",
    names_key="fine_label_names",
    n_classes=100,
    mean=(0.5071, 0.4865, 0.4409),
    std=(0.2673, 0.2564, 0.2762),
)


@dataclass
class CifarData:
    """The clean training and test images of a CIFAR variant and its class names."""

    train: TensorImageSet
    test: TensorImageSet
    classes: list[str]


def _unpickle(path: Path, layout: CifarLayout, keys: tuple[str, ...]) -> dict[str, object]:
    try:
        with path.open("rb") as handle:
            content = pickle.load(handle, encoding="latin1")
    except Exception as err:  # any failure to unpickle means the file is not a CIFAR pickle
        raise UsageError(f"malformed {layout.title} file {path}: cannot unpickle ({err})") from None
    missing = [key for key in keys if not isinstance(content, dict) or key not in content]
    if missing:
        raise UsageError(f"malformed {layout.title} file {path}: missing key {missing[0]!r} (expected {keys})")
    return content


def _read_batch(path: Path, layout: CifarLayout) -> tuple[np.ndarray, np.ndarray]:
    content = _unpickle(path, layout, ("data", layout.label_key))
    images = np.asarray(content["data"])
    labels = np.asarray(content[layout.label_key])
    if images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != 3 * 32 * 32:
        raise UsageError(
            f"malformed {layout.title} file {path}: 'data' is {images.dtype} {images.shape}, expected uint8 [N, 3072]"
        )
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise UsageError(f"malformed {layout.title} file {path}: {layout.label_key!r} must be {len(images)} integers")
    if labels.size and not 0 <= labels.min() <= labels.max() < layout.n_classes:
        raise UsageError(f"malformed {layout.title} file {path}: labels outside 0..{layout.n_classes - 1}")
    return images.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _tensor_set(parts: list[tuple[np.ndarray, np.ndarray]]) -> TensorImageSet:
    images = np.concatenate([images for images, _ in parts])
    labels = np.concatenate([labels for _, labels in parts])
    return TensorImageSet(torch.from_numpy(images), torch.from_numpy(labels))


def cifar_folder(root: Path, layout: CifarLayout) -> Path:
    """`root`'s CIFAR folder (e.g. `cifar-10-batches-py/`) when it has one, else `root` itself."""
    nested = root / layout.folder
    return nested if nested.is_dir() else root


def read_cifar(root: Path, layout: CifarLayout) -> CifarData:
    """The CIFAR variant of `layout` stored in `root` or in its `layout.folder`."""
    folder = cifar_folder(root, layout)
    for name in (*layout.train_files, layout.test_file, layout.meta_file):
        path = folder / name
        if not path.is_file():
            raise UsageError(f"{layout.title} file not found: {path} (expected {layout.describe()})")
    meta_path = folder / layout.meta_file
    classes = _unpickle(meta_path, layout, (layout.names_key,))[layout.names_key]
    if not isinstance(classes, list) or len(classes) != layout.n_classes:
        raise UsageError(f"malformed {layout.title} file {meta_path}: expected {layout.n_classes} class names")
    return CifarData(
        train=_tensor_set([_read_batch(folder / name, layout) for name in layout.train_files]),
        test=_tensor_set([_read_batch(folder / layout.test_file, layout)]),
        classes=[str(name) for name in classes],
    )


def cifar_splits(
    name: str, layout: CifarLayout, cifar: CifarData, test: TensorImageSet, vld_size: int | None, seed: int
) -> DatasetSplits:
    """Train/validation from the clean CIFAR training images, `test` as the test split."""
    return build_splits(
        name,
        cifar.train,
        test,
        n_classes=layout.n_classes,
        vld_size=vld_size,
        nominal_vld_size=5000,
        seed=seed,
        mean=layout.mean,
        std=layout.std,
        augment=AUGMENT,
        classes=cifar.classes,
    )


def _load(
    name: str, layout: CifarLayout, data: str | os.PathLike[str] | None, vld_size: int | None, seed: int
) -> DatasetSplits:
    cifar = read_cifar(dataset_root(name, data, layout.describe()), layout)
    return cifar_splits(name, layout, cifar, cifar.test, vld_size, seed)


@register_dataset("cifar10", help="CIFAR-10, python format")
def cifar10(*, data: str | os.PathLike[str] | None = None, vld_size: int | None = None, seed: int = 0) -> DatasetSplits:
    """CIFAR-10 (50000 train, 10000 test 32x32 images) from `data` or `data/cifar-10-batches-py`."""
    return _load("cifar10", CIFAR10, data, vld_size, seed)


@register_dataset("cifar100", help="CIFAR-100, python format")
def cifar100(
    *, data: str | os.PathLike[str] | None = None, vld_size: int | None = None, seed: int = 0
) -> DatasetSplits:
    """CIFAR-100 with its 100 fine labels (50000 train, 10000 test) from `data` or `data/cifar-100-python`."""
    return _load("cifar100", CIFAR100, data, vld_size, seed)
