"""Measuring subnets of a supernet: top-1 accuracy, and the extract → recalibrate → validate pipeline."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from data import DatasetSplits, batches
from search_space.base import Arch
from supernets.bn import recalibrate_bn
from supernets.ofa_mbv3 import extract_subnet


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
    """Top-1 accuracy in percent of `model` on a split (no augmentation)."""
    model.eval()
    correct = total = 0
    for x, y in batches(splits, split, resolution, batch_size, train=False, device=device, limit=limit):
        correct += int((model(x).argmax(1) == y).sum())
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


@dataclass(frozen=True)
class SubnetScore:
    """Validation accuracy of one subnet and where the time went (seconds)."""

    top1: float
    extract_s: float
    bn_s: float
    valid_s: float


def score_subnet(
    supernet: nn.Module,
    arch: Arch,
    splits: DatasetSplits,
    *,
    n_bn_cal: int = 500,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    seed: int = 0,
    split: str = "valid",
) -> tuple[nn.Module, SubnetScore]:
    """Extract `arch` with inherited weights, recalibrate its batch norm, and measure it on `split`."""
    t0 = time.perf_counter()
    subnet = extract_subnet(supernet, arch)
    t1 = time.perf_counter()
    images = calibration_images(splits, arch["r"], n_bn_cal, batch_size=batch_size, seed=seed, device=device)
    recalibrate_bn(subnet, images)
    t2 = time.perf_counter()
    top1 = accuracy(subnet, splits, split, arch["r"], batch_size=batch_size, device=device)
    t3 = time.perf_counter()
    return subnet, SubnetScore(top1=top1, extract_s=t1 - t0, bn_s=t2 - t1, valid_s=t3 - t2)
