"""Out-of-distribution test sets (corrupted copies of a dataset's test split) and the mean corruption error, mCE.

Where the corrupted images come from is a `CorruptionSource`, chosen by `corruption_source` (first kind that applies):

- `FolderSource`: `--ood_data DIR` in the ImageNet-C layout `DIR/<corruption>/<severity>/<class>/<image files>`.
- `HendrycksSource`: the CIFAR-10-C / CIFAR-100-C `.npy` files, for `cifar10c` / `cifar100c`, or for `cifar10` /
  `cifar100` when the data root also holds the `CIFAR-10-C/` (`CIFAR-100-C/`) folder.
- `GeneratedSource`: anything else: the dataset's own test split resized to the network's resolution, then
  corrupted by `robustness.corruptions.corrupt`.

`corruption_errors` measures the top-1 error (%) of a network on every corruption x severity cell, always on the
test split. `mce` is upstream FlatNAS/CNAS's mCE, the plain mean of those errors; `normalised_mce` is Hendrycks &
Dietterich's, each corruption's summed error divided by a reference network's (`read_reference`: the
`corruption_errors` of an earlier evaluation's `net.stats`). `ood_stats` is what goes into `net.stats`.
"""

from __future__ import annotations

import math
import os
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from data.base import DatasetSplits, FolderImageSet, ImageSet, TensorImageSet, batches
from data.cifar_c import CORRUPTIONS, SEVERITIES, _corrupted_test, _corruption_folder
from data.files import require_dir, require_file
from data.imagenet import SUFFIXES
from robustness.corruptions import check_corruption, check_severity, corrupt
from training.evaluate import accuracy
from utils.errors import UsageError
from utils.io import read_json_object

Errors = dict[str, dict[int, float]]
"""Top-1 error (%) per corruption, then per severity."""

CHUNK_SIZE = 256
"""Images corrupted per call of `corrupt` by `GeneratedSource` (each chunk has its own seed, see `cell_seed`)."""

FOLDER_LAYOUT = "<corruption>/<severity 1..5>/<class folder>/<image files> (the ImageNet-C layout)"

_CORRUPTED_DATASETS = ("cifar10c", "cifar100c")
_CLEAN_WITH_FOLDER = {"cifar10": "CIFAR-10-C", "cifar100": "CIFAR-100-C"}  # a clean CIFAR and its -C folder


def _first(images: ImageSet, limit: int | None) -> ImageSet:
    """The first `limit` images of a split (all when `limit` is None)."""
    if limit is None or limit >= len(images):
        return images
    return images.subset(np.arange(limit))


def _with_test(base: DatasetSplits, test: ImageSet, corruption: str, severity: int) -> DatasetSplits:
    if len(test) == 0:
        raise UsageError(f"no test images for corruption {corruption} at severity {severity}")
    return replace(base, test=test)


class CorruptionSource(ABC):
    """Where the corrupted test images of one corruption at one severity come from."""

    name: str
    """How `net.stats` records the source: "generated", "hendrycks" or the folder's path."""

    @classmethod
    @abstractmethod
    def detect(cls, dataset: str, data: str | None, ood_data: str | None) -> CorruptionSource | None:
        """A source of this kind for `dataset` (data root `data`, `--ood_data` folder); None when it does not apply."""

    def check(self, corruptions: Sequence[str], severities: Sequence[int]) -> None:  # noqa: B027  (optional hook)
        """A `UsageError` if some cell cannot be built; called before anything is evaluated."""

    @abstractmethod
    def splits(
        self, base: DatasetSplits, corruption: str, severity: int, resolution: int, seed: int, limit: int | None
    ) -> DatasetSplits:
        """`base` with its test split replaced by the first `limit` test images under `corruption` at `severity`."""


class FolderSource(CorruptionSource):
    """Image files in the ImageNet-C layout under `root`: `root/<corruption>/<severity>/<class>/<files>`.

    Class folders are sorted (as torchvision's ImageFolder does) and must be the same in every cell. When the
    dataset names its classes they must be those names, and a folder's label is the index of its name there;
    otherwise there must be as many folders as the dataset has classes.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()
        self.name = str(root)

    @classmethod
    def detect(cls, dataset: str, data: str | None, ood_data: str | None) -> CorruptionSource | None:
        """The `--ood_data` folder, whenever one is given."""
        return None if ood_data is None else cls(ood_data)

    def _cell(self, corruption: str, severity: int) -> Path:
        return self.root / corruption / str(severity)

    @staticmethod
    def _classes(cell: Path) -> list[str]:
        classes = sorted(entry.name for entry in os.scandir(cell) if entry.is_dir())
        if not classes:
            raise UsageError(f"no class folders in {cell} (expected {FOLDER_LAYOUT})")
        return classes

    def check(self, corruptions: Sequence[str], severities: Sequence[int]) -> None:
        """Every corruption and severity folder exists, and all hold the same class folders."""
        if not self.root.is_dir():
            raise UsageError(f"--ood_data directory not found: {self.root} (expected {FOLDER_LAYOUT})")
        first: tuple[Path, list[str]] | None = None
        for corruption in corruptions:
            require_dir(self.root / corruption, f"one folder per severity, {FOLDER_LAYOUT}")
            for severity in severities:
                cell = require_dir(self._cell(corruption, severity), f"class folders, {FOLDER_LAYOUT}")
                classes = self._classes(cell)
                if first is None:
                    first = (cell, classes)
                elif classes != first[1]:
                    odd = sorted(set(classes) ^ set(first[1]))
                    raise UsageError(f"class folders of {cell} differ from {first[0]}: {', '.join(odd[:5])}")

    def _labels(self, base: DatasetSplits, cell: Path, classes: list[str]) -> dict[str, int]:
        if base.classes is None:
            if len(classes) != base.n_classes:
                raise UsageError(
                    f"{cell} has {len(classes)} class folders, but {base.name} has {base.n_classes} classes"
                )
            return {name: i for i, name in enumerate(classes)}
        if sorted(classes) != sorted(base.classes):
            odd = sorted(set(classes) ^ set(base.classes))
            raise UsageError(
                f"class folders of {cell} differ from the classes of {base.name}: {', '.join(odd[:5]) or 'duplicates'}"
            )
        return {name: i for i, name in enumerate(base.classes)}

    def splits(
        self, base: DatasetSplits, corruption: str, severity: int, resolution: int, seed: int, limit: int | None
    ) -> DatasetSplits:
        """The cell's image files, class by class in sorted order, each file list sorted."""
        cell = require_dir(self._cell(corruption, severity), f"class folders, {FOLDER_LAYOUT}")
        classes = self._classes(cell)
        labels = self._labels(base, cell, classes)
        samples = [
            (path, labels[name])
            for name in classes
            for path in sorted(
                entry.path
                for entry in os.scandir(cell / name)
                if entry.is_file() and entry.name.lower().endswith(SUFFIXES)
            )
        ]
        return _with_test(base, _first(FolderImageSet(samples), limit), corruption, severity)


class HendrycksSource(CorruptionSource):
    """The CIFAR-10-C / CIFAR-100-C files in `folder`: `<corruption>.npy` (5 severities stacked) and `labels.npy`."""

    name = "hendrycks"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def detect(cls, dataset: str, data: str | None, ood_data: str | None) -> CorruptionSource | None:
        """`cifar10c` / `cifar100c` (files required), or `cifar10` / `cifar100` with the -C folder in its data root."""
        if dataset in _CORRUPTED_DATASETS:
            return cls(_corruption_folder(dataset, data)[1])
        if dataset in _CLEAN_WITH_FOLDER and data is not None:
            folder = Path(data).expanduser() / _CLEAN_WITH_FOLDER[dataset]
            return cls(folder) if folder.is_dir() else None
        return None

    def check(self, corruptions: Sequence[str], severities: Sequence[int]) -> None:
        """Every corruption's `.npy` file and `labels.npy` exist."""
        require_file(self.folder / "labels.npy", f"the labels of the corrupted images, from {self.folder.name}.tar")
        for corruption in corruptions:
            require_file(self.folder / f"{corruption}.npy", f"the {corruption} images, from {self.folder.name}.tar")

    def splits(
        self, base: DatasetSplits, corruption: str, severity: int, resolution: int, seed: int, limit: int | None
    ) -> DatasetSplits:
        """The rows of `severity` in the corruption's file (and in `labels.npy`)."""
        test = _corrupted_test(self.folder, [corruption], severity, base.n_classes)
        return _with_test(base, _first(test, limit), corruption, severity)


def cell_seed(seed: int, corruption: str, severity: int, chunk: int) -> int:
    """The seed `GeneratedSource` gives `corrupt` for chunk `chunk` of a cell (a 32-bit integer)."""
    index = (
        CORRUPTIONS.index(corruption)
        if corruption in CORRUPTIONS
        else len(CORRUPTIONS) + zlib.crc32(corruption.encode())
    )
    return int(np.random.SeedSequence([seed, index, severity, chunk]).generate_state(1)[0])


class GeneratedSource(CorruptionSource):
    """The dataset's own test split, resized to the network's resolution as `batches` does, then `corrupt`-ed.

    The resized clean images (uint8, rounded) are kept for the next cell; each cell is corrupted `chunk_size` images
    at a time, chunk `k` with seed `cell_seed(seed, corruption, severity, k)`, so only one cell is held at a time:
    memory is about twice `N x 3 x resolution^2` bytes for `N` test images.
    """

    name = "generated"

    def __init__(self, chunk_size: int = CHUNK_SIZE) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        self.chunk_size = chunk_size
        self._clean: tuple[DatasetSplits, int, int | None, torch.Tensor] | None = None

    @classmethod
    def detect(cls, dataset: str, data: str | None, ood_data: str | None) -> CorruptionSource | None:
        """Always applies: the fallback."""
        return cls()

    def clean(self, base: DatasetSplits, resolution: int, limit: int | None) -> torch.Tensor:
        """The first `limit` test images of `base` resized to `resolution`: uint8 `[N, 3, resolution, resolution]`."""
        if self._clean is not None and self._clean[0] is base and self._clean[1:3] == (resolution, limit):
            return self._clean[3]
        unnormalised = replace(base, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
        chunks = [
            x.mul(255).round_().clamp_(0, 255).to(torch.uint8)
            for x, _ in batches(unnormalised, "test", resolution, self.chunk_size, train=False, limit=limit)
        ]
        images = torch.cat(chunks) if chunks else torch.empty(0, 3, resolution, resolution, dtype=torch.uint8)
        self._clean = (base, resolution, limit, images)
        return images

    def splits(
        self, base: DatasetSplits, corruption: str, severity: int, resolution: int, seed: int, limit: int | None
    ) -> DatasetSplits:
        """The resized test images under `corruption` at `severity`, with the clean test labels."""
        clean = self.clean(base, resolution, limit)
        corrupted = torch.empty_like(clean)
        for k, start in enumerate(range(0, len(clean), self.chunk_size)):
            chunk = clean[start : start + self.chunk_size]
            out = corrupt(chunk.clone(), corruption, severity, seed=cell_seed(seed, corruption, severity, k))
            if out.dtype != torch.uint8 or out.shape != chunk.shape:
                raise RuntimeError(
                    f"corrupt({corruption!r}) returned {out.dtype} {tuple(out.shape)}, expected uint8 "
                    f"{tuple(chunk.shape)}"
                )
            corrupted[start : start + len(chunk)] = out
        labels = base.test.labels[: len(clean)].clone()
        return _with_test(base, TensorImageSet(corrupted, labels), corruption, severity)


_SOURCE_KINDS: tuple[Callable[[str, str | None, str | None], CorruptionSource | None], ...] = (
    FolderSource.detect,
    HendrycksSource.detect,
    GeneratedSource.detect,
)
"""The kinds of source, in order of preference: the first that applies is used."""


def corruption_source(dataset: str, data: str | None, ood_data: str | None) -> CorruptionSource:
    """The source of corrupted images for `dataset` (data root `data`) and the `--ood_data` folder (or None)."""
    for detect in _SOURCE_KINDS:
        source = detect(dataset, data, ood_data)
        if source is not None:
            return source
    raise AssertionError("GeneratedSource always applies")  # pragma: no cover


def _checked(names: Iterable[Any], check: Callable[[Any], Any], what: str) -> list[Any]:
    checked = list(dict.fromkeys(check(name) for name in names))
    if not checked:
        raise UsageError(f"no {what} to evaluate: give at least one")
    return checked


def corruption_errors(
    model: nn.Module,
    base: DatasetSplits,
    source: CorruptionSource,
    *,
    resolution: int,
    corruptions: Sequence[str] = CORRUPTIONS,
    severities: Sequence[int] = tuple(range(1, SEVERITIES + 1)),
    seed: int = 0,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    limit: int | None = None,
) -> Errors:
    """Top-1 error (%) of `model` on the test split under each corruption at each severity.

    Names and severities are checked (and every cell by `source.check`) before anything is evaluated; `limit` keeps
    the first `limit` test images of each cell. `seed` only matters to a `GeneratedSource`.
    """
    if isinstance(corruptions, str):
        corruptions = (corruptions,)
    names = _checked(corruptions, check_corruption, "corruptions")
    levels = _checked(severities, check_severity, "severities")
    source.check(names, levels)
    errors: Errors = {name: {} for name in names}
    for corruption, severity in tqdm(list(product(names, levels)), desc="corruptions", unit="cell", leave=False):
        cell = source.splits(base, corruption, severity, resolution, seed, limit)
        top1 = accuracy(model, cell, "test", resolution, batch_size=batch_size, device=device, limit=limit)
        errors[corruption][severity] = 100.0 - top1
    return errors


def _cells(errors: Mapping[str, Mapping[int, float]]) -> list[tuple[str, int]]:
    cells = [(corruption, severity) for corruption, by_severity in errors.items() for severity in by_severity]
    if not cells:
        raise UsageError("no corruption errors to average")
    return cells


def mce(errors: Mapping[str, Mapping[int, float]]) -> float:
    """Upstream FlatNAS/CNAS's mCE: the plain mean top-1 error (%) over every corruption and severity."""
    cells = _cells(errors)
    return math.fsum(errors[c][s] for c, s in cells) / len(cells)


def normalised_mce(errors: Mapping[str, Mapping[int, float]], reference: Mapping[str, Mapping[int, float]]) -> float:
    """Hendrycks & Dietterich's mCE: the mean over corruptions of `100 * sum_s E[c][s] / sum_s E_ref[c][s]`.

    `reference` must hold every cell of `errors` (its other cells are ignored) with a nonzero error sum per
    corruption.
    """
    _cells(errors)
    ratios = []
    for corruption, by_severity in errors.items():
        if not by_severity:
            continue
        missing = [s for s in by_severity if s not in reference.get(corruption, {})]
        if missing:
            raise UsageError(f"the reference errors lack corruption {corruption} at severity {missing[0]}")
        reference_sum = math.fsum(reference[corruption][s] for s in by_severity)
        if reference_sum == 0:
            raise UsageError(f"the reference errors of corruption {corruption} sum to 0: cannot normalise by them")
        ratios.append(100.0 * (math.fsum(by_severity.values()) / reference_sum))
    return math.fsum(ratios) / len(ratios)


def read_reference(path: str | os.PathLike[str]) -> Errors:
    """The `corruption_errors` of a `net.stats` written by an earlier OOD evaluation, severities as integers."""
    stats = read_json_object(path, "reference stats", "a net.stats record")
    table = stats.get("corruption_errors")
    if not isinstance(table, dict) or not table:
        raise UsageError(f"{path} has no corruption_errors (write it with an OOD evaluation of the reference network)")
    errors: Errors = {}
    for corruption, by_severity in table.items():
        if not isinstance(by_severity, dict):
            raise UsageError(f"malformed corruption_errors in {path}: {corruption} is not a severity -> error map")
        errors[corruption] = {}
        for severity, error in by_severity.items():
            try:
                level = int(severity)
            except ValueError:
                raise UsageError(
                    f"malformed corruption_errors in {path}: severity {severity!r} of {corruption}"
                ) from None
            if isinstance(error, bool) or not isinstance(error, int | float):
                raise UsageError(f"malformed corruption_errors in {path}: error {error!r} of {corruption}/{severity}")
            errors[corruption][level] = float(error)
    return errors


def ood_stats(
    errors: Mapping[str, Mapping[int, float]],
    reference: Mapping[str, Mapping[int, float]] | None = None,
    *,
    source_name: str,
) -> dict[str, Any]:
    """The `net.stats` entries of an OOD evaluation: mCE (and the normalised one), the errors and the source."""
    stats: dict[str, Any] = {"mCE": mce(errors)}
    if reference is not None:
        stats["mCE_normalised"] = normalised_mce(errors, reference)
    stats["corruption_errors"] = {c: {str(s): e for s, e in by_severity.items()} for c, by_severity in errors.items()}
    stats["ood_source"] = source_name
    return stats
