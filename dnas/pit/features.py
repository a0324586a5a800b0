"""Features calculators: how many input channels (features) a layer sees, given the masks of their producers.

Each calculator gives a 0/1 mask over the layer's input features; the soft count is its sum, so its gradient
reaches the alpha of whichever layers produce the input. The alive indices of the mask are what export keeps.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from dnas.pit.masks import Masker


class FeaturesCalculator(ABC):
    """The input-feature mask of a layer."""

    @abstractmethod
    def mask(self, device: torch.device) -> Tensor:
        """One 0/1 (soft) value per input feature."""

    def features(self, device: torch.device) -> Tensor:
        """The soft number of alive input features."""
        return self.mask(device).sum()


class ConstFeatures(FeaturesCalculator):
    """A fixed number of features: the network input, or the output of a layer that is not searched."""

    def __init__(self, n: int) -> None:
        self.n = n

    def mask(self, device: torch.device) -> Tensor:
        """All ones."""
        return torch.ones(self.n, device=device)


class MaskerFeatures(FeaturesCalculator):
    """The alive output channels of the layers sharing `masker`."""

    def __init__(self, masker: Masker) -> None:
        self.masker = masker

    def mask(self, device: torch.device) -> Tensor:
        """The masker's mask."""
        return self.masker.mask()


class ConcatFeatures(FeaturesCalculator):
    """Channels concatenated from several producers, in order."""

    def __init__(self, parts: list[FeaturesCalculator]) -> None:
        self.parts = parts

    def mask(self, device: torch.device) -> Tensor:
        """The parts' masks, concatenated."""
        return torch.cat([part.mask(device) for part in self.parts])


class FlattenFeatures(FeaturesCalculator):
    """Channels flattened with their `positions` spatial positions (`features = channels × positions`)."""

    def __init__(self, inner: FeaturesCalculator, positions: int) -> None:
        self.inner = inner
        self.positions = positions

    def mask(self, device: torch.device) -> Tensor:
        """Each channel's value repeated over its positions, channel-major like `torch.flatten`."""
        return self.inner.mask(device).repeat_interleave(self.positions)
