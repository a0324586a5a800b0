"""Splitting: the digits default, the fixed digits test split, and the stratified hold-out it all rests on."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits

from data import SplitSpec, create_dataset, validation_split
from data.splits import stratified_holdout
from utils.errors import UsageError


def rows(images: torch.Tensor) -> list[bytes]:
    return sorted(image.numpy().tobytes() for image in images)


def test_digits_partition_the_bundled_images_into_1137_300_360() -> None:
    splits = create_dataset("digits")
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (1137, 300, 360)
    assert splits.train.images.shape[1:] == (3, 8, 8)
    bundled = load_digits()
    scaled = np.round(bundled.images * 255 / 16).astype(np.uint8)
    everything = torch.from_numpy(np.repeat(scaled[:, None], 3, axis=1))
    pooled = torch.cat([splits.train.images, splits.valid.images, splits.test.images])
    assert rows(pooled) == rows(everything)  # a partition: nothing lost, nothing shared (the 1797 rows are unique)
    assert int(pooled.max()) == 255 and int(pooled.min()) == 0
    assert torch.equal(pooled[:, 0], pooled[:, 2])  # grayscale replicated
    assert splits.augment.pad_crop and not splits.augment.hflip and not splits.augment.random_resized_crop


def test_digits_test_split_is_independent_of_the_seed() -> None:
    first, second = create_dataset("digits", seed=0), create_dataset("digits", seed=7)
    assert torch.equal(first.test.images, second.test.images)
    assert torch.equal(first.test.labels, second.test.labels)
    assert rows(first.valid.images) != rows(second.valid.images)
    assert rows(torch.cat([first.train.images, first.valid.images])) == rows(
        torch.cat([second.train.images, second.valid.images])
    )


def test_digits_splits_are_stratified() -> None:
    splits = create_dataset("digits", vld_size=200)
    assert torch.bincount(splits.valid.labels).sub(20).abs().max() <= 1
    assert torch.bincount(splits.test.labels).sub(36).abs().max() <= 1


def test_digits_ignores_data_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="data.digits"):
        splits = create_dataset("digits", data="/somewhere")
    assert len(splits.test) == 360
    assert "ignoring data=/somewhere" in caplog.text


def test_stratified_holdout_takes_exact_shares_of_balanced_classes() -> None:
    labels = np.repeat(np.arange(4), 25)
    kept, held = stratified_holdout(labels, 20, np.random.default_rng(0))
    assert np.bincount(labels[held]).tolist() == [5, 5, 5, 5]
    assert len(kept) == 80 and not set(kept) & set(held)


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(1, 30), min_size=1, max_size=8),
    fraction=st.floats(0.0, 0.99),
    seed=st.integers(0, 2**32 - 1),
)
def test_stratified_holdout_is_a_proportional_partition(counts: list[int], fraction: float, seed: int) -> None:
    labels = np.random.default_rng(seed).permutation(np.repeat(np.arange(len(counts)), counts))
    size = int(fraction * len(labels))
    kept, held = stratified_holdout(labels, size, np.random.default_rng(seed))
    assert len(held) == size
    assert np.array_equal(np.sort(np.concatenate([kept, held])), np.arange(len(labels)))
    share = np.array(counts) * size / len(labels)
    assert np.all(np.abs(np.bincount(labels[held], minlength=len(counts)) - share) < 1)
    again = stratified_holdout(labels, size, np.random.default_rng(seed))
    assert np.array_equal(again[1], held)


def test_a_recorded_split_round_trips_and_wins_over_the_runs_seed() -> None:
    recorded = SplitSpec("digits", 0, 300, "its card w.json")
    assert SplitSpec.from_record(recorded.record(), "its card w.json") == recorded
    assert validation_split(recorded, dataset="digits", seed=5, vld_size=None, owner="the supernet's") == recorded
    assert validation_split(recorded, dataset="digits", seed=5, vld_size=300, owner="the supernet's") == recorded
    carved = validation_split(recorded, dataset="cifar10", seed=5, vld_size=200, owner="the supernet's")
    assert carved == SplitSpec("cifar10", 5, 200)  # a split of another dataset says nothing about this one
    assert validation_split(None, dataset="digits", seed=5, vld_size=None, owner="") == SplitSpec("digits", 5, None)
    with pytest.raises(UsageError) as err:
        validation_split(recorded, dataset="digits", seed=5, vld_size=200, owner="the supernet's")
    assert str(err.value) == (
        "--vld_size 200 differs from the supernet's validation split (300 images, seed 0, from its card w.json); "
        "leave it out"
    )


@pytest.mark.parametrize(
    "record",
    [None, [0, 300], {"dataset": "digits", "seed": 0}, {"dataset": "digits", "seed": True, "vld_size": 300}],
)
def test_a_malformed_split_record_is_a_usage_error_naming_its_file(record) -> None:
    with pytest.raises(UsageError, match="net.inherited records a malformed validation split"):
        SplitSpec.from_record(record, "net.inherited")
