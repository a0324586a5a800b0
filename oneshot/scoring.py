"""Scoring a path of a trained supernet: inherited weights, recalibrated batch norm, validation top-1.

`PathScorer` is the performance estimate every search strategy (`oneshot.strategies`) ranks paths by. Each path
is extracted into a standalone copy (the supernet is never changed), its batch-norm statistics are re-estimated on
the same `n_bn_cal` seeded training images for every path (common random numbers: two paths differ by their
weights, not by the images they were calibrated on), and its top-1 is measured on the validation split, never on
test. Scores are cached by path.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn

from data import DatasetSplits
from oneshot.supernet import OneShotSupernet
from training.bn import recalibrate_bn
from training.evaluate import accuracy, calibration_images

log = logging.getLogger(__name__)


class PathScorer:
    """`scorer(path) -> top-1` (validation split, percent) of `supernet`'s path with recalibrated batch norm.

    `n_bn_cal` training images (0: keep the supernet's statistics) recalibrate every path, the same images each
    time (drawn once with `seed`, kept on `device`: `n_bn_cal · 3 · resolution² · 4` bytes); `valid_limit` keeps the
    first images of the validation split (None: all). `calls` counts the paths actually measured (cache misses).
    """

    def __init__(
        self,
        supernet: OneShotSupernet,
        splits: DatasetSplits,
        resolution: int,
        *,
        n_bn_cal: int = 500,
        batch_size: int = 256,
        valid_limit: int | None = None,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        if n_bn_cal < 0:
            raise ValueError(f"n_bn_cal must be >= 0, got {n_bn_cal}")
        self.supernet = supernet
        self.splits = splits
        self.resolution = resolution
        self.n_bn_cal = n_bn_cal
        self.batch_size = batch_size
        self.valid_limit = valid_limit
        self.seed = seed
        self.device = torch.device(device)
        self.cache: dict[tuple[int, ...], float] = {}
        self.calls = 0
        self._images: list[torch.Tensor] | None = None

    def calibration_images(self) -> list[torch.Tensor]:
        """The batch-norm calibration batches, drawn on first use and reused for every path."""
        if self._images is None:
            self._images = list(
                calibration_images(
                    self.splits,
                    self.resolution,
                    self.n_bn_cal,
                    batch_size=self.batch_size,
                    seed=self.seed,
                    device=self.device,
                )
            )
        return self._images

    def network(self, path: Sequence[int]) -> nn.Module:
        """The standalone network of `path` with inherited weights and recalibrated batch norm, in eval mode."""
        net = self.supernet.extract(path).to(self.device)
        if self.n_bn_cal > 0:
            recalibrate_bn(net, self.calibration_images())
        return net.eval()

    def __call__(self, path: Sequence[int]) -> float:
        """The validation top-1 (percent) of `path`, measured once and cached."""
        key = tuple(self.supernet.spec.validate_path(path))
        if key not in self.cache:
            self.cache[key] = accuracy(
                self.network(key),
                self.splits,
                "valid",
                self.resolution,
                batch_size=self.batch_size,
                device=self.device,
                limit=self.valid_limit,
            )
            self.calls += 1
            log.debug("path %s: top-1 %.2f", list(key), self.cache[key])
        return self.cache[key]
