from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from data import Augment, DatasetSplits, TensorImageSet, create_dataset
from robustness.corruptions import corrupt
from robustness.ood import (
    CHUNK_SIZE,
    FolderSource,
    GeneratedSource,
    HendrycksSource,
    cell_seed,
    corruption_errors,
    corruption_source,
    mce,
    normalised_mce,
    ood_stats,
    read_reference,
)
from tests.data.conftest import TinyFiles
from training.evaluate import accuracy
from utils.errors import UsageError

ERRORS = {"fog": {1: 10.0, 2: 30.0}, "snow": {1: 20.0, 2: 40.0}}
REFERENCE = {"fog": {1: 20.0, 2: 20.0}, "snow": {1: 40.0, 2: 60.0}}


class Brightness(nn.Module):
    """Predicts class `floor(mean pixel / 255 * n_classes)`: a constant image of value `(c + 0.5) * 255 / n` is `c`."""

    def __init__(self, splits: DatasetSplits) -> None:
        super().__init__()
        self.n = splits.n_classes
        self.register_buffer("mean", torch.tensor(splits.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(splits.std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        level = ((x * self.std + self.mean).mean((1, 2, 3)) * self.n).floor().long().clamp(0, self.n - 1)
        return F.one_hot(level, self.n).float()


def shade(label: int, n_classes: int) -> int:
    """The pixel value `Brightness` reads as `label`."""
    return round((label + 0.5) * 255 / n_classes)


# mCE


def test_mce_is_the_plain_mean_of_every_cell() -> None:
    assert mce(ERRORS) == 25.0


def test_normalised_mce_divides_each_corruption_by_the_reference_sum() -> None:
    # fog: 100 * 40 / 40 = 100, snow: 100 * 60 / 100 = 60
    assert normalised_mce(ERRORS, REFERENCE) == 80.0
    assert normalised_mce(ERRORS, ERRORS) == 100.0
    odd = {"fog": {1: 1.1, 2: 7.3, 3: 0.7}, "snow": {1: 33.3, 2: 0.1, 3: 99.9}}
    assert normalised_mce(odd, odd) == 100.0


def test_normalised_mce_needs_every_cell_in_the_reference() -> None:
    with pytest.raises(UsageError, match="lack corruption snow at severity 2"):
        normalised_mce(ERRORS, {"fog": REFERENCE["fog"], "snow": {1: 40.0}})
    with pytest.raises(UsageError, match="lack corruption snow"):
        normalised_mce(ERRORS, {"fog": REFERENCE["fog"]})
    with pytest.raises(UsageError, match="sum to 0"):
        normalised_mce(ERRORS, {"fog": {1: 0.0, 2: 0.0}, "snow": REFERENCE["snow"]})
    with pytest.raises(UsageError, match="no corruption errors"):
        mce({})


def test_ood_stats_keeps_floats_and_string_severities() -> None:
    assert ood_stats(ERRORS, source_name="generated") == {
        "mCE": 25.0,
        "corruption_errors": {"fog": {"1": 10.0, "2": 30.0}, "snow": {"1": 20.0, "2": 40.0}},
        "ood_source": "generated",
    }
    with_reference = ood_stats(ERRORS, REFERENCE, source_name="hendrycks")
    assert with_reference["mCE_normalised"] == 80.0
    assert with_reference["ood_source"] == "hendrycks"


def test_read_reference_round_trips_ood_stats(tmp_path: Path) -> None:
    path = tmp_path / "net.stats"
    path.write_text(json.dumps({"top1": 90.0, **ood_stats(ERRORS, source_name="generated")}))
    assert read_reference(path) == ERRORS
    assert normalised_mce(ERRORS, read_reference(path)) == 100.0


def test_read_reference_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.stats"
    with pytest.raises(UsageError, match=f"not found: {missing}"):
        read_reference(missing)
    without = tmp_path / "clean.stats"
    without.write_text(json.dumps({"top1": 90.0}))
    with pytest.raises(UsageError, match=f"{without} has no corruption_errors"):
        read_reference(without)
    broken = tmp_path / "broken.stats"
    broken.write_text("{not json")
    with pytest.raises(UsageError, match=str(broken)):
        read_reference(broken)
    bad_severity = tmp_path / "bad.stats"
    bad_severity.write_text(json.dumps({"corruption_errors": {"fog": {"one": 1.0}}}))
    with pytest.raises(UsageError, match=f"malformed corruption_errors in {bad_severity}"):
        read_reference(bad_severity)


# Generated corruptions

RESOLUTION = 16
GENERATED = ("gaussian_noise", "contrast")


@pytest.fixture(scope="module")
def digits() -> DatasetSplits:
    return create_dataset("digits")


@pytest.fixture(scope="module")
def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 10)
    ).eval()


def clean_resized(splits: DatasetSplits, resolution: int) -> torch.Tensor:
    x = splits.test.images.float().div(255)
    x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
    return x.mul(255).round().clamp(0, 255).to(torch.uint8)


def corrupted_by_hand(splits: DatasetSplits, corruption: str, severity: int, seed: int) -> DatasetSplits:
    clean = clean_resized(splits, RESOLUTION)
    chunks = [
        corrupt(chunk, corruption, severity, seed=cell_seed(seed, corruption, severity, k))
        for k, chunk in enumerate(clean.split(CHUNK_SIZE))
    ]
    return replace(splits, test=TensorImageSet(torch.cat(chunks), splits.test.labels.clone()))


def test_generated_is_the_fallback_source(tmp_path: Path) -> None:
    assert isinstance(corruption_source("digits", None, None), GeneratedSource)
    assert corruption_source("digits", None, None).name == "generated"
    source = corruption_source("digits", None, str(tmp_path))
    assert isinstance(source, FolderSource)
    assert source.name == str(tmp_path)


def test_generated_split_is_the_resized_test_split_corrupted(digits: DatasetSplits) -> None:
    clean_images, clean_labels = digits.test.images.clone(), digits.test.labels.clone()
    source = GeneratedSource()
    cell = source.splits(digits, "gaussian_noise", 3, RESOLUTION, 0, None)
    images = cell.test.images
    assert images.dtype == torch.uint8
    assert tuple(images.shape) == (len(digits.test), 3, RESOLUTION, RESOLUTION)
    assert torch.equal(cell.test.labels, clean_labels)
    assert cell.train is digits.train and cell.valid is digits.valid
    assert not torch.equal(images, clean_resized(digits, RESOLUTION))
    assert torch.equal(GeneratedSource().splits(digits, "gaussian_noise", 3, RESOLUTION, 0, None).test.images, images)
    assert not torch.equal(source.splits(digits, "gaussian_noise", 3, RESOLUTION, 1, None).test.images, images)
    assert torch.equal(digits.test.images, clean_images) and torch.equal(digits.test.labels, clean_labels)
    limited = source.splits(digits, "gaussian_noise", 3, RESOLUTION, 0, 50)
    assert tuple(limited.test.images.shape) == (50, 3, RESOLUTION, RESOLUTION)


def test_generated_errors_match_accuracy_on_hand_corrupted_splits(digits: DatasetSplits, small_net) -> None:
    errors = corruption_errors(
        small_net, digits, GeneratedSource(), resolution=RESOLUTION, corruptions=GENERATED, severities=(1, 4), seed=7
    )
    assert list(errors) == list(GENERATED)
    for corruption in GENERATED:
        assert list(errors[corruption]) == [1, 4]
        for severity in (1, 4):
            by_hand = corrupted_by_hand(digits, corruption, severity, seed=7)
            assert errors[corruption][severity] == 100 - accuracy(small_net, by_hand, "test", RESOLUTION)


def test_names_and_severities_are_checked_first(digits: DatasetSplits, small_net) -> None:
    def run(**kwargs) -> None:
        corruption_errors(small_net, digits, GeneratedSource(), resolution=RESOLUTION, **kwargs)

    with pytest.raises(UsageError, match="corruption"):
        run(corruptions=("no_such_corruption",))
    with pytest.raises(UsageError):
        run(corruptions=("fog",), severities=(0,))
    with pytest.raises(UsageError):
        run(corruptions=("fog",), severities=(6,))
    with pytest.raises(UsageError, match="no corruptions"):
        run(corruptions=())
    with pytest.raises(UsageError, match="no severities"):
        run(corruptions=("fog",), severities=())


# CIFAR-10-C files

PER_SEVERITY = 6  # rows per severity written by TinyFiles.corrupted


def hendrycks_files(tmp_path: Path) -> Path:
    """A tiny CIFAR-10 + CIFAR-10-C root where severity s of fog has s right rows, of gaussian_noise 6 - s."""
    root = Path(TinyFiles(tmp_path).corrupted().kwargs["data"])
    folder = root / "CIFAR-10-C"
    labels = np.load(folder / "labels.npy")  # classes 0..5 in every severity block
    for corruption, right in (("fog", lambda s: s), ("gaussian_noise", lambda s: PER_SEVERITY - s)):
        stacked = np.empty((5 * PER_SEVERITY, 32, 32, 3), np.uint8)
        for severity in range(1, 6):
            for i in range(PER_SEVERITY):
                row = (severity - 1) * PER_SEVERITY + i
                predicted = labels[row] if i < right(severity) else 9
                stacked[row] = shade(predicted, 10)
        np.save(folder / f"{corruption}.npy", stacked)
    return root


def expected_error(right: int) -> float:
    return 100 - 100.0 * right / PER_SEVERITY


@pytest.mark.parametrize("dataset", ["cifar10c", "cifar10"])
def test_hendrycks_files_give_the_rows_of_each_severity(tmp_path: Path, dataset: str) -> None:
    root = hendrycks_files(tmp_path)
    base = create_dataset(dataset, data=str(root))
    source = corruption_source(dataset, str(root), None)
    assert isinstance(source, HendrycksSource) and source.name == "hendrycks"
    model = Brightness(base)
    errors = corruption_errors(
        model, base, source, resolution=32, corruptions=("fog", "gaussian_noise"), severities=(2,)
    )
    assert errors == {"fog": {2: expected_error(2)}, "gaussian_noise": {2: expected_error(4)}}
    every = corruption_errors(model, base, source, resolution=32, corruptions=("fog",))
    assert every == {"fog": {s: expected_error(s) for s in range(1, 6)}}


def test_cifar10_without_the_c_folder_generates(tmp_path: Path) -> None:
    root = TinyFiles(tmp_path).cifar().kwargs["data"]
    assert isinstance(corruption_source("cifar10", root, None), GeneratedSource)


def test_missing_corruption_file_is_named_before_evaluating(tmp_path: Path) -> None:
    root = hendrycks_files(tmp_path)
    base = create_dataset("cifar10", data=str(root))
    source = corruption_source("cifar10", str(root), None)
    evaluated = []
    model = Brightness(base)
    model.register_forward_hook(lambda *_: evaluated.append(1))
    with pytest.raises(UsageError, match=r"not found: .*CIFAR-10-C/snow\.npy"):
        corruption_errors(model, base, source, resolution=32, corruptions=("fog", "snow"))
    assert not evaluated


def test_cifar10c_without_files_uses_the_data_modules_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="CIFAR-10-C"):
        corruption_source("cifar10c", str(tmp_path), None)


# ImageNet-C style folders

CLASSES = ["cat", "dog"]
FOLDER_CORRUPTIONS = ("fog", "snow")
PER_CELL = 4  # two images per class


def wrong_in(corruption: str, severity: int) -> int:
    return (FOLDER_CORRUPTIONS.index(corruption) + severity) % (PER_CELL + 1)


def folder_tree(root: Path) -> Path:
    """`root/<corruption>/<severity>/<class>/k.png`: in each cell `wrong_in(...)` images look like the other class."""
    for corruption in FOLDER_CORRUPTIONS:
        for severity in range(1, 6):
            for k in range(PER_CELL):
                label = k % 2
                shown = 1 - label if k < wrong_in(corruption, severity) else label
                folder = root / corruption / str(severity) / CLASSES[label]
                folder.mkdir(parents=True, exist_ok=True)
                pixels = np.full((10, 12, 3), shade(shown, 2), np.uint8)
                Image.fromarray(pixels).save(folder / f"{k}.png")
    return root


def two_class_base(classes: list[str] | None = CLASSES) -> DatasetSplits:
    images = TensorImageSet(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.tensor([0, 1]))
    return DatasetSplits("two", 2, images, images, images, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), Augment(), classes)


@pytest.mark.parametrize("classes", [CLASSES, None])
def test_folder_errors_per_cell(tmp_path: Path, classes: list[str] | None) -> None:
    root = folder_tree(tmp_path / "ood")
    base = two_class_base(classes)
    source = corruption_source("imagenet", None, str(root))
    errors = corruption_errors(Brightness(base), base, source, resolution=8, corruptions=FOLDER_CORRUPTIONS)
    assert errors == {c: {s: 100 - 100.0 * (PER_CELL - wrong_in(c, s)) / PER_CELL for s in range(1, 6)} for c in errors}
    assert list(errors) == list(FOLDER_CORRUPTIONS)


def test_folder_classes_must_match_the_dataset(tmp_path: Path) -> None:
    root = folder_tree(tmp_path / "ood")
    base = replace(two_class_base(), classes=["cat", "cow"])
    with pytest.raises(UsageError, match="differ from the classes of two: cow, dog"):
        corruption_errors(Brightness(base), base, FolderSource(root), resolution=8, corruptions=("fog",))
    base = replace(two_class_base(None), n_classes=3)
    with pytest.raises(UsageError, match="2 class folders, but two has 3 classes"):
        corruption_errors(Brightness(base), base, FolderSource(root), resolution=8, corruptions=("fog",))


def test_folder_missing_severity_is_named_before_evaluating(tmp_path: Path) -> None:
    root = folder_tree(tmp_path / "ood")
    shutil.rmtree(root / "fog" / "3")
    base = two_class_base()
    evaluated = []
    model = Brightness(base)
    model.register_forward_hook(lambda *_: evaluated.append(1))
    with pytest.raises(UsageError, match="fog/3"):
        corruption_errors(model, base, FolderSource(root), resolution=8, corruptions=("snow", "fog"))
    assert not evaluated
    with pytest.raises(UsageError, match=f"not found: {root / 'rain'}"):
        FolderSource(root).check(["rain"], [1])
    with pytest.raises(UsageError, match="--ood_data directory not found"):
        FolderSource(tmp_path / "nowhere").check(["fog"], [1])
