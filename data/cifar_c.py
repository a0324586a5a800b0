"""CIFAR-10-C and CIFAR-100-C (Hendrycks & Dietterich): clean train/validation, corrupted test images."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from data.base import DatasetSplits, TensorImageSet
from data.cifar import CIFAR10, CIFAR100, cifar_splits, read_cifar
from data.files import dataset_root, require_dir, require_file
from data.registry import register_dataset
from utils.errors import UsageError

logger = logging.getLogger(__name__)

CORRUPTIONS = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
SEVERITIES = 5
_VARIANTS = {"cifar10c": ("CIFAR-10-C", CIFAR10), "cifar100c": ("CIFAR-100-C", CIFAR100)}


def _corruption_folder(name: str, data: str | os.PathLike[str] | None) -> tuple[Path, Path]:
    """The data root and its corruption folder (e.g. `CIFAR-10-C/`)."""
    folder, clean = _VARIANTS[name]
    root = dataset_root(name, data, f"{clean.folder}/ (or the {clean.title} files) and {folder}/")
    expected = f"one <corruption>.npy per corruption and labels.npy from {folder}.tar"
    return root, require_dir(root / folder, expected)


def _corruptions_in(folder: Path) -> list[str]:
    found = {path.stem for path in folder.glob("*.npy")} - {"labels"}
    return [c for c in CORRUPTIONS if c in found] + sorted(found - set(CORRUPTIONS))


def list_corruptions(name: str, data: str | os.PathLike[str]) -> list[str]:
    """The corruptions of dataset `name` ("cifar10c" or "cifar100c") with a file under `data`, standard ones first."""
    if name not in _VARIANTS:
        raise UsageError(f"unknown corrupted dataset {name!r}; choose one of: {', '.join(_VARIANTS)}")
    return _corruptions_in(_corruption_folder(name, data)[1])


def _load_npy(path: Path, expected: str) -> np.ndarray:
    require_file(path, expected)
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise UsageError(f"malformed .npy file {path}: {err} (expected {expected})") from None


def _corrupted_test(folder: Path, corruptions: list[str], severity: int, n_classes: int) -> TensorImageSet:
    """The test images of `corruptions` at `severity`, concatenated in that order."""
    labels_path = folder / "labels.npy"
    labels = _load_npy(labels_path, f"int labels [{SEVERITIES} x N], one per corrupted image")
    if labels.ndim != 1 or len(labels) % SEVERITIES or not np.issubdtype(labels.dtype, np.integer):
        raise UsageError(
            f"malformed {labels_path}: {labels.dtype} {labels.shape}, expected int labels [{SEVERITIES} x N]"
        )
    per_severity = len(labels) // SEVERITIES
    rows = slice((severity - 1) * per_severity, severity * per_severity)
    chosen_labels = np.asarray(labels[rows], dtype=np.int64)
    if chosen_labels.size and not 0 <= chosen_labels.min() <= chosen_labels.max() < n_classes:
        raise UsageError(f"malformed {labels_path}: labels outside 0..{n_classes - 1}")
    images = []
    for corruption in corruptions:
        path = folder / f"{corruption}.npy"
        expected = f"uint8 [{len(labels)}, 32, 32, 3]: {SEVERITIES} severities of {per_severity} images, mildest first"
        stacked = _load_npy(path, expected)
        if stacked.dtype != np.uint8 or stacked.shape != (len(labels), 32, 32, 3):
            raise UsageError(f"malformed {path}: {stacked.dtype} {stacked.shape}, expected {expected}")
        images.append(np.ascontiguousarray(stacked[rows].transpose(0, 3, 1, 2)))
    return TensorImageSet(
        torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.tile(chosen_labels, len(corruptions)))
    )


def _load(
    name: str,
    data: str | os.PathLike[str] | None,
    vld_size: int | None,
    seed: int,
    corruption: str | None,
    severity: int,
) -> DatasetSplits:
    if isinstance(severity, bool) or not isinstance(severity, int) or not 1 <= severity <= SEVERITIES:
        raise UsageError(f"severity must be an integer from 1 to {SEVERITIES}, got {severity!r}")
    clean = _VARIANTS[name][1]
    root, folder = _corruption_folder(name, data)
    found = _corruptions_in(folder)
    if corruption is None:
        if not found:
            raise UsageError(f"no corruption files found in {folder} (expected <corruption>.npy, e.g. fog.npy)")
        corruptions = found
    elif corruption in found:
        corruptions = [corruption]
    else:
        available = ", ".join(found) or "none"
        raise UsageError(f"corruption file not found: {folder / corruption}.npy (found: {available})")
    logger.info("%s: corruptions on disk: %s; testing on %s at severity %d", name, found, corruptions, severity)
    cifar = read_cifar(root, clean)
    test = _corrupted_test(folder, corruptions, severity, clean.n_classes)
    return cifar_splits(name, clean, cifar, test, vld_size, seed)


@register_dataset("cifar10c", help="CIFAR-10 with CIFAR-10-C corruptions as the test split")
def cifar10c(
    *,
    data: str | os.PathLike[str] | None = None,
    vld_size: int | None = None,
    seed: int = 0,
    corruption: str | None = None,
    severity: int = 5,
) -> DatasetSplits:
    """Clean CIFAR-10 train/validation; test on `corruption` (None: every one on disk) at `severity` (1..5)."""
    return _load("cifar10c", data, vld_size, seed, corruption, severity)


@register_dataset("cifar100c", help="CIFAR-100 with CIFAR-100-C corruptions as the test split")
def cifar100c(
    *,
    data: str | os.PathLike[str] | None = None,
    vld_size: int | None = None,
    seed: int = 0,
    corruption: str | None = None,
    severity: int = 5,
) -> DatasetSplits:
    """Clean CIFAR-100 train/validation; test on `corruption` (None: every one on disk) at `severity` (1..5)."""
    return _load("cifar100c", data, vld_size, seed, corruption, severity)
