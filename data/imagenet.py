"""ImageNet-style class-per-folder trees: `train/<class>/*` and `val/<class>/*` (val is the test split)."""

from __future__ import annotations

import os
from pathlib import Path

from data.base import Augment, DatasetSplits, FolderImageSet
from data.files import dataset_root, require_dir
from data.registry import register_dataset
from data.splits import build_splits
from utils.errors import UsageError

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SUFFIXES = (".jpeg", ".jpg", ".png")
LAYOUT = "train/<class>/*.JPEG|jpg|png and val/<class>/... with the same class folders"


def _scan(split: Path) -> dict[str, list[str]]:
    """Each class folder of `split` mapped to its sorted image files."""
    require_dir(split, LAYOUT)
    classes = sorted(entry.name for entry in os.scandir(split) if entry.is_dir())
    if not classes:
        raise UsageError(f"no class folders in {split} (expected {LAYOUT})")
    return {
        name: sorted(
            entry.path
            for entry in os.scandir(split / name)
            if entry.is_file() and entry.name.lower().endswith(SUFFIXES)
        )
        for name in classes
    }


def _samples(tree: dict[str, list[str]], index: dict[str, int]) -> FolderImageSet:
    return FolderImageSet([(path, index[name]) for name, paths in tree.items() for path in paths])


@register_dataset("imagenet", help="class-per-folder images (train/, val/)")
def imagenet(
    *, data: str | os.PathLike[str] | None = None, vld_size: int | None = None, seed: int = 0
) -> DatasetSplits:
    """A class-per-folder dataset: classes are the sorted folder names of `train/`, `val/` is the test split."""
    root = dataset_root("imagenet", data, LAYOUT)
    train_tree, val_tree = _scan(root / "train"), _scan(root / "val")
    if list(val_tree) != list(train_tree):
        odd = sorted(set(train_tree) ^ set(val_tree))
        raise UsageError(f"class folders of {root / 'val'} differ from {root / 'train'}: {', '.join(odd[:5])}")
    empty = [name for name, paths in train_tree.items() if not paths]
    if empty:
        raise UsageError(f"no images in {root / 'train' / empty[0]} (expected files ending {', '.join(SUFFIXES)})")
    classes = list(train_tree)
    index = {name: i for i, name in enumerate(classes)}
    train = _samples(train_tree, index)
    return build_splits(
        "imagenet",
        train,
        _samples(val_tree, index),
        n_classes=len(classes),
        vld_size=vld_size,
        nominal_vld_size=min(10_000, len(train) // 10),
        seed=seed,
        mean=MEAN,
        std=STD,
        augment=Augment(random_resized_crop=True, hflip=True),
        classes=classes,
    )
