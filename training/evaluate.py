"""Measuring a network: top-1 accuracy on a split, and the training images batch-norm recalibration runs on."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from data import DatasetSplits, batches


@torch.no_grad()
def accuracy(
    model: nn.Module,
    splits: DatasetSplits,
    split: str,
    resolution: int,
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    limit: int | None = None,
) -> float:
    """Top-1 accuracy in percent of `model` on a split (no augmentation).

    A NaN or infinite logit is a `FloatingPointError`: its argmax would be a class like any other, and a broken
    network would be scored as a valid accuracy.
    """
    model.eval()
    correct = total = 0
    for x, y in batches(splits, split, resolution, batch_size, train=False, device=device, limit=limit):
        logits = model(x)
        finite = torch.isfinite(logits)
        if not bool(finite.all()):
            bad = int((~finite).sum())
            raise FloatingPointError(
                f"non-finite logits on the {split} split: {bad} of {logits.numel()} values are NaN or infinite"
            )
        correct += int((logits.argmax(1) == y).sum())
        total += int(y.numel())
    return 100.0 * correct / max(total, 1)


def calibration_images(
    splits: DatasetSplits, resolution: int, n: int, *, batch_size: int, seed: int, device: str | torch.device
) -> Iterator[torch.Tensor]:
    """`n` training images in a seeded random order with training augmentation, for batch-norm recalibration."""
    generator = torch.Generator().manual_seed(seed)
    for x, _ in batches(
        splits, "train", resolution, batch_size, train=True, generator=generator, device=device, limit=n
    ):
        yield x
