"""Scoring a subnet of a supernet: the extract → recalibrate → validate pipeline, with its timings."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from data import DatasetSplits
from search_space.base import Arch
from supernets.ofa_mbv3 import extract_subnet
from training.bn import recalibrate_bn
from training.evaluate import accuracy, calibration_images


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
