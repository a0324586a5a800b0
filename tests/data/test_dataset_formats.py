"""Each on-disk format loads with its exact values: pixels, label mapping, class names, corruption severities."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from data import create_dataset
from data.cifar_c import CORRUPTIONS, list_corruptions
from utils.errors import UsageError


def test_cifar10_pixels_labels_and_class_names_survive(tiny) -> None:
    truth = tiny.cifar10()
    splits = create_dataset("cifar10", vld_size=10, **truth.kwargs)
    assert splits.classes == [f"class_{i}" for i in range(10)]
    assert splits.test.images.shape == (20, 3, 32, 32)
    assert np.array_equal(splits.test.images[7].numpy(), truth.test_images[7])
    assert splits.test.labels.tolist() == truth.test_labels.tolist()
    assert splits.augment.pad_crop and splits.augment.hflip and not splits.augment.random_resized_crop
    assert splits.mean == pytest.approx((0.4914, 0.4822, 0.4465))


def test_cifar_accepts_the_batches_folder_itself(tiny) -> None:
    truth = tiny.cifar10()
    folder = f"{truth.kwargs['data']}/cifar-10-batches-py"
    splits = create_dataset("cifar10", data=folder, vld_size=10)
    assert np.array_equal(splits.test.images.numpy(), truth.test_images)


def test_cifar100_uses_the_fine_labels(tiny) -> None:
    truth = tiny.cifar100()
    splits = create_dataset("cifar100", **truth.kwargs)
    assert splits.n_classes == 100 and len(splits.classes) == 100
    assert splits.test.labels.tolist() == truth.test_labels.tolist()  # not the coarse labels (fine % 20)
    assert int(torch.cat([splits.train.labels, splits.valid.labels]).max()) == 99


def test_svhn_maps_label_10_to_digit_0_and_keeps_pixels(tiny) -> None:
    truth = tiny.svhn()
    splits = create_dataset("svhn", **truth.kwargs)
    assert splits.test.labels.tolist() == [i % 10 for i in range(20)]
    assert int(splits.test.labels[10]) == 0  # stored as 10 in the .mat file
    assert np.array_equal(splits.test.images[3].numpy(), truth.test_images[3])
    assert splits.augment.pad_crop and not splits.augment.hflip


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_reads_raw_and_gzipped_idx(tiny, gz: bool) -> None:
    truth = tiny.fashion_mnist(gz=gz)
    splits = create_dataset("fashion_mnist", vld_size=10, **truth.kwargs)
    assert splits.test.images.shape == (20, 3, 28, 28)
    assert np.array_equal(splits.test.images.numpy(), truth.test_images)
    assert splits.test.labels.tolist() == truth.test_labels.tolist()
    assert splits.classes[0] == "T-shirt/top" and splits.classes[9] == "Ankle boot"
    assert splits.augment.pad_crop and splits.augment.hflip


def test_imagenet_classes_are_sorted_folders_and_stray_files_are_ignored(tiny) -> None:
    truth = tiny.imagenet()
    splits = create_dataset("imagenet", vld_size=3, **truth.kwargs)
    assert splits.classes == truth.classes and splits.n_classes == 3
    assert len(splits.train) + len(splits.valid) == 24 and len(splits.test) == 6
    paths = [path for path, _ in splits.test.samples]
    assert all(path.endswith((".png", ".JPEG", ".jpg")) for path in paths)
    assert [label for _, label in splits.test.samples] == [0, 0, 1, 1, 2, 2]
    assert all(f"/val/{splits.classes[label]}/" in path for path, label in splits.test.samples)
    assert splits.augment.random_resized_crop and splits.augment.hflip
    assert splits.mean == (0.485, 0.456, 0.406)


def test_imagenet_val_with_other_classes_is_a_usage_error(tiny) -> None:
    truth = tiny.imagenet()
    shutil.rmtree(f"{truth.kwargs['data']}/val/n01443537")
    with pytest.raises(UsageError, match="n01443537"):
        create_dataset("imagenet", **truth.kwargs)


def test_imagenet_default_validation_is_at_least_one_per_class(tiny) -> None:
    splits = create_dataset("imagenet", **tiny.imagenet().kwargs)
    assert len(splits.valid) == 3  # 10% of 24 images is 2, raised to one per class


def test_cifar10c_severity_selects_its_block_of_each_corruption(tiny) -> None:
    truth = tiny.cifar10c()
    stacked = truth.extra["stacked"]
    for severity in (1, 3, 5):
        splits = create_dataset("cifar10c", vld_size=10, corruption="fog", severity=severity, **truth.kwargs)
        block = stacked["fog"][(severity - 1) * 6 : severity * 6].transpose(0, 3, 1, 2)
        assert np.array_equal(splits.test.images.numpy(), block)
        assert splits.test.labels.tolist() == list(range(6))
    clean = create_dataset("cifar10", vld_size=10, **truth.kwargs)
    corrupted = create_dataset("cifar10c", vld_size=10, **truth.kwargs)
    assert torch.equal(clean.train.images, corrupted.train.images)  # train and validation stay clean
    assert torch.equal(clean.valid.images, corrupted.valid.images)
    assert corrupted.classes == clean.classes


def test_cifar10c_without_a_corruption_concatenates_all_on_disk_in_standard_order(tiny) -> None:
    truth = tiny.cifar10c()
    assert list_corruptions("cifar10c", truth.kwargs["data"]) == ["gaussian_noise", "fog"]
    splits = create_dataset("cifar10c", vld_size=10, **truth.kwargs)
    assert np.array_equal(splits.test.images.numpy(), truth.test_images)
    assert splits.test.labels.tolist() == truth.test_labels.tolist()


def test_cifar100c_loads_with_fine_labels(tiny) -> None:
    truth = tiny.cifar100c()
    splits = create_dataset("cifar100c", corruption="gaussian_noise", severity=2, **truth.kwargs)
    block = truth.extra["stacked"]["gaussian_noise"][6:12].transpose(0, 3, 1, 2)
    assert np.array_equal(splits.test.images.numpy(), block)
    assert splits.n_classes == 100


@pytest.mark.parametrize("severity", [0, 6, True])
def test_cifar10c_severity_out_of_range_is_a_usage_error(tiny, severity: int) -> None:
    with pytest.raises(UsageError, match="severity must be an integer from 1 to 5"):
        create_dataset("cifar10c", severity=severity, **tiny.cifar10c().kwargs)


def test_cifar10c_unknown_corruption_names_the_file_and_lists_those_found(tiny) -> None:
    truth = tiny.cifar10c()
    with pytest.raises(UsageError, match=r"not found: .*CIFAR-10-C/snow\.npy \(found: gaussian_noise, fog\)"):
        create_dataset("cifar10c", corruption="snow", **truth.kwargs)


def test_the_fifteen_standard_corruptions() -> None:
    assert len(CORRUPTIONS) == len(set(CORRUPTIONS)) == 15
    assert CORRUPTIONS[0] == "gaussian_noise" and CORRUPTIONS[-1] == "jpeg_compression"
