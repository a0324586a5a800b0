"""Features calculators: how many input channels (features) a layer sees, given the masks of their producers.

Each calculator gives a mask over the layer's input features; the soft count is its sum, so its gradient reaches
the mask parameters of whichever layers produce the input. With `expected` it reads the producers' expected masks
(what the cost regularisers use: FBNetV2's softmax mixtures; PIT's binarised masks either way). The alive indices
of the (0/1) mask are what export keeps.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from dnas.pit.masks import BaseMasker


class FeaturesCalculator(ABC):
    """The input-feature mask of a layer."""

    @abstractmethod
    def mask(self, device: torch.device, expected: bool = False) -> Tensor:
        """One 0/1 (soft) value per input feature; the producers' expected masks with `expected`."""

    def features(self, device: torch.device, expected: bool = False) -> Tensor:
        """The soft number of alive input features."""
        return self.mask(device, expected).sum()


class ConstFeatures(FeaturesCalculator):
    """A fixed number of features: the network input, or the output of a layer that is not searched."""

    def __init__(self, n: int) -> None:
        self.n = n

    def mask(self, device: torch.device, expected: bool = False) -> Tensor:
        """All ones."""
        return torch.ones(self.n, device=device)


class MaskerFeatures(FeaturesCalculator):
    """The alive output channels of the layers sharing `masker`."""

    def __init__(self, masker: BaseMasker) -> None:
        self.masker = masker

    def mask(self, device: torch.device, expected: bool = False) -> Tensor:
        """The masker's mask (or expected mask)."""
        return self.masker.expected_mask() if expected else self.masker.mask()


class ConcatFeatures(FeaturesCalculator):
    """Channels concatenated from several producers, in order."""

    def __init__(self, parts: list[FeaturesCalculator]) -> None:
        self.parts = parts

    def mask(self, device: torch.device, expected: bool = False) -> Tensor:
        """The parts' masks, concatenated."""
        return torch.cat([part.mask(device, expected) for part in self.parts])


class FlattenFeatures(FeaturesCalculator):
    """Channels flattened with their `positions` spatial positions (`features = channels × positions`)."""

    def __init__(self, inner: FeaturesCalculator, positions: int) -> None:
        self.inner = inner
        self.positions = positions

    def mask(self, device: torch.device, expected: bool = False) -> Tensor:
        """Each channel's value repeated over its positions, channel-major like `torch.flatten`."""
        return self.inner.mask(device, expected).repeat_interleave(self.positions)
