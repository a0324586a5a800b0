"""Malformed files are one-line `UsageError`s naming the file and what was expected."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from data import batches, create_dataset
from utils.errors import UsageError


def check(err: pytest.ExceptionInfo[UsageError], path: Path) -> None:
    message = str(err.value)
    assert str(path) in message, message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda raw: raw[:-10], "malformed IDX file.*expected 1568"),
        (lambda raw: raw[:6], "truncated IDX file"),
        (lambda raw: (2049).to_bytes(4, "big") + raw[4:], "magic number 2049, expected 2051"),
    ],
)
def test_damaged_idx_images(tiny, damage, match: str) -> None:
    truth = tiny.fashion_mnist(gz=False)
    path = Path(truth.kwargs["data"]) / "t10k-images-idx3-ubyte"
    # keep two images so the data size is exact: 20 28x28 images -> rewrite as 2 images, then damage
    raw = path.read_bytes()
    two = raw[:4] + (2).to_bytes(4, "big") + raw[8:16] + raw[16 : 16 + 2 * 784]
    path.write_bytes(damage(two))
    with pytest.raises(UsageError, match=match) as err:
        create_dataset("fashion_mnist", vld_size=10, **truth.kwargs)
    check(err, path)


def test_idx_count_mismatch_names_both_files(tiny) -> None:
    truth = tiny.fashion_mnist(gz=False)
    labels = Path(truth.kwargs["data"]) / "t10k-labels-idx1-ubyte"
    labels.write_bytes((2049).to_bytes(4, "big") + (19).to_bytes(4, "big") + bytes(19))
    with pytest.raises(UsageError, match="20 images but .* 19 labels") as err:
        create_dataset("fashion_mnist", vld_size=10, **truth.kwargs)
    check(err, labels)


def test_truncated_gzip_idx(tiny) -> None:
    truth = tiny.fashion_mnist(gz=True)
    path = Path(truth.kwargs["data"]) / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(UsageError, match="cannot read IDX file") as err:
        create_dataset("fashion_mnist", vld_size=10, **truth.kwargs)
    check(err, path)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ({"labels": [0, 1]}, "missing key 'data'"),
        ({"data": np.zeros((2, 3072), np.uint8)}, "missing key 'labels'"),
        ({"data": np.zeros((2, 1024), np.uint8), "labels": [0, 1]}, r"expected uint8 \[N, 3072\]"),
        ({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}, r"labels outside 0..9"),
        ([1, 2, 3], "missing key 'data'"),
    ],
)
def test_malformed_cifar_batch(tiny, content: object, match: str) -> None:
    truth = tiny.cifar10()
    path = Path(truth.kwargs["data"]) / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(pickle.dumps(content))
    with pytest.raises(UsageError, match=match) as err:
        create_dataset("cifar10", **truth.kwargs)
    check(err, path)


def test_cifar_file_that_is_not_a_pickle(tiny) -> None:
    truth = tiny.cifar10()
    path = Path(truth.kwargs["data"]) / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(b"this is not a pickle")
    with pytest.raises(UsageError, match="cannot unpickle") as err:
        create_dataset("cifar10", **truth.kwargs)
    check(err, path)


def test_cifar_meta_without_class_names(tiny) -> None:
    truth = tiny.cifar10()
    path = Path(truth.kwargs["data"]) / "cifar-10-batches-py" / "batches.meta"
    path.write_bytes(pickle.dumps({"num_cases_per_batch": 8}))
    with pytest.raises(UsageError, match="missing key 'label_names'") as err:
        create_dataset("cifar10", **truth.kwargs)
    check(err, path)


def test_svhn_mat_without_x(tiny) -> None:
    truth = tiny.svhn()
    path = Path(truth.kwargs["data"]) / "train_32x32.mat"
    scipy.io.savemat(path, {"y": np.ones((40, 1), np.uint8)})
    with pytest.raises(UsageError, match="missing 'X'") as err:
        create_dataset("svhn", **truth.kwargs)
    check(err, path)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ({"X": np.zeros((32, 32, 3, 4), np.uint8), "y": np.zeros((4, 1), np.uint8)}, "labels outside 1..10"),
        ({"X": np.zeros((28, 28, 3, 4), np.uint8), "y": np.ones((4, 1), np.uint8)}, r"'X' is uint8 \(28, 28, 3, 4\)"),
        ({"X": np.zeros((32, 32, 3, 4), np.uint8), "y": np.ones((3, 1), np.uint8)}, "'y' has 3 entries"),
    ],
)
def test_svhn_mat_with_wrong_content(tiny, content: dict[str, np.ndarray], match: str) -> None:
    truth = tiny.svhn()
    path = Path(truth.kwargs["data"]) / "test_32x32.mat"
    scipy.io.savemat(path, content)
    with pytest.raises(UsageError, match=match) as err:
        create_dataset("svhn", **truth.kwargs)
    check(err, path)


def test_svhn_file_that_is_not_a_mat_file(tiny) -> None:
    truth = tiny.svhn()
    path = Path(truth.kwargs["data"]) / "test_32x32.mat"
    path.write_bytes(b"garbage" * 10)
    with pytest.raises(UsageError, match="cannot read it as a .mat file") as err:
        create_dataset("svhn", **truth.kwargs)
    check(err, path)


def test_corruption_npy_with_wrong_shape(tiny) -> None:
    truth = tiny.cifar10c()
    path = Path(truth.kwargs["data"]) / "CIFAR-10-C" / "fog.npy"
    np.save(path, np.zeros((30, 3, 32, 32), np.uint8))
    with pytest.raises(UsageError, match=r"malformed .*expected uint8 \[30, 32, 32, 3\]") as err:
        create_dataset("cifar10c", corruption="fog", **truth.kwargs)
    check(err, path)


def test_corruption_labels_not_divisible_into_five_severities(tiny) -> None:
    truth = tiny.cifar10c()
    path = Path(truth.kwargs["data"]) / "CIFAR-10-C" / "labels.npy"
    np.save(path, np.zeros(31, np.int64))
    with pytest.raises(UsageError, match=r"expected int labels \[5 x N\]") as err:
        create_dataset("cifar10c", **truth.kwargs)
    check(err, path)


def test_corruption_file_that_is_not_npy(tiny) -> None:
    truth = tiny.cifar10c()
    path = Path(truth.kwargs["data"]) / "CIFAR-10-C" / "fog.npy"
    path.write_bytes(b"not numpy")
    with pytest.raises(UsageError, match="malformed .npy file") as err:
        create_dataset("cifar10c", corruption="fog", **truth.kwargs)
    check(err, path)


def test_missing_corruption_folder(tiny) -> None:
    truth = tiny.cifar10()  # clean data only
    with pytest.raises(UsageError, match="directory not found") as err:
        create_dataset("cifar10c", **truth.kwargs)
    check(err, Path(truth.kwargs["data"]) / "CIFAR-10-C")


def test_unreadable_image_file_fails_when_batched(tiny) -> None:
    truth = tiny.imagenet()
    splits = create_dataset("imagenet", vld_size=3, **truth.kwargs)
    path = Path(splits.test.samples[0][0])
    path.write_bytes(b"not an image")
    with pytest.raises(UsageError, match="cannot read image") as err:
        list(batches(splits, "test", 16, 4, train=False))
    check(err, path)


def test_imagenet_class_without_images(tiny) -> None:
    truth = tiny.imagenet()
    folder = Path(truth.kwargs["data"]) / "train" / "n01484850"
    for image in folder.iterdir():
        if image.suffix != ".txt":
            image.unlink()
    with pytest.raises(UsageError, match="no images in") as err:
        create_dataset("imagenet", **truth.kwargs)
    check(err, folder)
