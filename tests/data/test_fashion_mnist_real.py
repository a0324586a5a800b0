"""The real Fashion-MNIST from Debian's dataset-fashion-mnist package, when it is installed."""

from __future__ import annotations

import pytest
import torch

from data import create_dataset
from data.fashion_mnist import DEFAULT_ROOT


@pytest.mark.skipif(not DEFAULT_ROOT.is_dir(), reason=f"{DEFAULT_ROOT} is not installed")
def test_real_fashion_mnist_loads_from_the_default_path() -> None:
    splits = create_dataset("fashion_mnist")
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (55000, 5000, 10000)
    assert splits.train.images.shape == (55000, 3, 28, 28)
    pooled = torch.cat([splits.train.labels, splits.valid.labels])
    assert torch.bincount(pooled).tolist() == [6000] * 10
    assert torch.bincount(splits.test.labels).tolist() == [1000] * 10
    assert torch.bincount(splits.valid.labels).tolist() == [500] * 10
