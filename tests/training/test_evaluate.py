import dataclasses

import pytest
import torch
from torch import nn

from data import create_dataset
from training.evaluate import accuracy, calibration_images


class Constant(nn.Module):
    """Always predicts class `label`, whatever the image."""

    def __init__(self, label: int, n_classes: int = 10) -> None:
        super().__init__()
        self.logits = torch.nn.functional.one_hot(torch.tensor(label), n_classes).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1)


@pytest.fixture(scope="module")
def splits():
    full = create_dataset("digits")
    return dataclasses.replace(full, train=full.train.subset(range(64)), valid=full.valid.subset(range(50)))


def test_accuracy_is_the_percentage_of_correct_predictions(splits):
    labels = splits.valid.labels
    for label in (0, 3):
        expected = 100.0 * int((labels == label).sum()) / len(labels)
        assert accuracy(Constant(label), splits, "valid", 8, batch_size=7) == expected
    first = splits.valid.labels[:9]
    assert accuracy(Constant(3), splits, "valid", 8, limit=9) == 100.0 * int((first == 3).sum()) / 9


def test_calibration_images_are_n_seeded_training_images(splits):
    def draw(seed):
        return list(calibration_images(splits, 8, 20, batch_size=8, seed=seed, device="cpu"))

    images = draw(1)
    assert [x.shape for x in images] == [(8, 3, 8, 8), (8, 3, 8, 8), (4, 3, 8, 8)]
    assert all(torch.equal(a, b) for a, b in zip(images, draw(1), strict=True))
    assert not torch.equal(images[0], draw(2)[0])


class Broken(Constant):
    """Predicts class `label`, except that one logit of the `bad`-th image is `value` (NaN or infinite)."""

    def __init__(self, label: int, bad: int, value: float) -> None:
        super().__init__(label)
        self.bad, self.value = bad, value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x).clone()
        logits[self.bad, 5] = self.value
        return logits


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_logits_are_an_error_not_an_accuracy(splits, value):
    with pytest.raises(FloatingPointError, match=r"^non-finite logits on the valid split: 1 of 70 values"):
        accuracy(Broken(0, bad=2, value=value), splits, "valid", 8, batch_size=7)
