"""Every registered dataset: loads from its tiny fixture, splits correctly, and reports path problems in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import data
from data import FolderImageSet, TensorImageSet, create_dataset, list_datasets
from data.base import ImageSet
from utils.errors import UsageError

NEEDS_FILES = [name for name in list_datasets() if name != "digits"]
HAS_DEFAULT_PATH = {"digits", "fashion_mnist"}


def keys(images: ImageSet) -> list[object]:
    """One identity per image: its bytes for in-memory sets, its path for image files."""
    if isinstance(images, FolderImageSet):
        return [path for path, _ in images.samples]
    return [image.numpy().tobytes() for image in images.images]


def test_all_datasets_are_registered_and_exported() -> None:
    expected = {"digits", "fashion_mnist", "cifar10", "cifar100", "svhn", "imagenet", "cifar10c", "cifar100c"}
    assert expected <= set(list_datasets())
    assert {"create_dataset", "list_datasets", "batches", "DatasetSplits", "TensorImageSet"} <= set(data.__all__)


def test_every_registered_dataset_has_a_fixture(tiny) -> None:
    assert set(list_datasets()) <= tiny.names(), "add a tiny-file builder to tests/data/conftest.py"


@pytest.mark.parametrize("name", list_datasets())
def test_dataset_loads_with_disjoint_stratified_splits(name: str, tiny) -> None:
    truth = tiny.build(name)
    splits = create_dataset(name, seed=3, **truth.kwargs)
    assert splits.name == name
    assert splits.n_classes == truth.n_classes
    assert len(splits.mean) == len(splits.std) == 3
    assert splits.classes is not None and len(splits.classes) == splits.n_classes
    for images in (splits.train, splits.valid, splits.test):
        assert images.labels.dtype == torch.int64
        assert int(images.labels.min()) >= 0 and int(images.labels.max()) < splits.n_classes
        if isinstance(images, TensorImageSet):
            assert images.images.dtype == torch.uint8 and images.images.shape[1] == 3
    train, valid, test = keys(splits.train), keys(splits.valid), keys(splits.test)
    assert len(set(train) | set(valid)) == len(train) + len(valid), "train and validation overlap"
    assert not set(valid) & set(test), "validation overlaps test"
    if truth.classes is not None:
        assert splits.classes == truth.classes
    if truth.train_labels.size:
        pooled = np.concatenate([splits.train.labels.numpy(), splits.valid.labels.numpy()])
        assert sorted(pooled) == sorted(truth.train_labels)
        assert np.array_equal(splits.test.labels.numpy(), truth.test_labels)
    if truth.train_images is not None:
        assert sorted(train + valid) == sorted(image.tobytes() for image in truth.train_images)
        assert np.array_equal(splits.test.images.numpy(), truth.test_images)
    # stratified: each class's share of the validation set matches its share of the training data, within one image
    n_train = len(train) + len(valid)
    all_train = torch.cat([splits.train.labels, splits.valid.labels])
    share = torch.bincount(all_train, minlength=splits.n_classes).numpy() * len(valid) / n_train
    counts = torch.bincount(splits.valid.labels, minlength=splits.n_classes).numpy()
    assert np.all(np.abs(counts - share) < 1)


@pytest.mark.parametrize("name", list_datasets())
def test_validation_split_follows_the_seed(name: str, tiny) -> None:
    truth = tiny.build(name)
    first, again, other = (create_dataset(name, seed=seed, **truth.kwargs) for seed in (0, 0, 1))
    assert keys(first.valid) == keys(again.valid) and keys(first.train) == keys(again.train)
    assert keys(first.valid) != keys(other.valid)
    assert keys(first.test) == keys(other.test)


@pytest.mark.parametrize("name", NEEDS_FILES)
def test_missing_directory_is_a_one_line_usage_error(name: str, tmp_path: Path) -> None:
    missing = tmp_path / "no_such_dir"
    with pytest.raises(UsageError, match="not found") as err:
        create_dataset(name, data=str(missing))
    assert str(missing) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name", NEEDS_FILES)
def test_missing_files_is_a_one_line_usage_error(name: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found") as err:
        create_dataset(name, data=str(tmp_path))
    assert str(tmp_path) in str(err.value) and "expected" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name", [name for name in list_datasets() if name not in HAS_DEFAULT_PATH])
def test_no_data_directory_is_a_usage_error(name: str) -> None:
    with pytest.raises(UsageError, match="needs a data directory"):
        create_dataset(name)


def test_unknown_dataset_and_option_are_usage_errors(tiny) -> None:
    with pytest.raises(UsageError, match="unknown dataset 'mnist'.*digits"):
        create_dataset("mnist")
    with pytest.raises(UsageError, match="invalid options for dataset 'cifar10'.*severity"):
        create_dataset("cifar10", severity=3, **tiny.cifar10().kwargs)


@pytest.mark.parametrize("vld_size", [0, 9, 40, 100, 2.5])
def test_vld_size_out_of_range_is_a_usage_error(vld_size: float, tiny) -> None:
    with pytest.raises(UsageError, match="vld_size"):
        create_dataset("cifar10", vld_size=vld_size, **tiny.cifar10().kwargs)


def test_default_vld_size_falls_back_to_a_tenth_of_a_small_training_set(tiny) -> None:
    kwargs = tiny.cifar10().kwargs
    assert len(create_dataset("cifar10", **kwargs).valid) == 10  # max(40 // 10, 10 classes)
    assert len(create_dataset("cifar10", vld_size=15, **kwargs).valid) == 15
    assert len(create_dataset("digits").valid) == 300
