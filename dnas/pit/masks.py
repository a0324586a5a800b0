"""PIT's masks: the masker interface, a straight-through binariser and the alpha, beta and gamma maskers.

`BaseMasker` is what searchable layers multiply by; other engines bring their own (FBNetV2's choices).
Alpha masks output channels (features), beta the receptive field and gamma the dilation of 1-D convolutions.
Every PIT masker holds parameters `theta` that start at 1 and are binarised at 0.5 by a straight-through estimator:
the forward value is exactly 0 or 1, the gradient passes through unchanged. Some elements are fixed at 1 (`fixed`)
so that no layer ever disappears: channel 0 of every alpha, the newest tap of every beta, the coarsest dilation
of every gamma.

Taps of a 1-D convolution are indexed by their distance `t` from the *causal end* of the kernel: `t = 0` is the
last kernel element, the one that multiplies the most recent input sample of a causal convolution. Beta and gamma
give one mask value per tap; their product is the tap mask applied to the kernel.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor, nn

THRESHOLD = 0.5


def ste_binarize(x: Tensor, threshold: float = THRESHOLD) -> Tensor:
    """`1` where `x >= threshold`, else `0`, with the identity as gradient (straight-through estimator)."""
    hard = (x >= threshold).to(x.dtype)
    return x + (hard - x).detach()


class BaseMasker(nn.Module, ABC):
    """What a layer's channels (or kernel taps) are multiplied by: PIT's binarised masks, FBNetV2's choices.

    `mask()` is what the forward pass uses; `expected_mask()` what the cost regularisers read (by default the
    same). Outside a training forward pass both engines' `mask()` is 0/1: the architecture that export keeps.
    """

    @abstractmethod
    def mask(self) -> Tensor:
        """The mask the forward pass multiplies by."""

    def expected_mask(self) -> Tensor:
        """The mask the costs read."""
        return self.mask()

    @abstractmethod
    def freeze(self) -> None:
        """Keep the full size (every element) and stop training."""

    @property
    def trainable(self) -> bool:
        """Whether any of the masker's parameters receives gradients."""
        return any(p.requires_grad for p in self.parameters())

    @trainable.setter
    def trainable(self, value: bool) -> None:
        for p in self.parameters():
            p.requires_grad_(value)


class Masker(BaseMasker):
    """`n` trainable mask parameters `theta`, binarised, with some elements fixed at 1."""

    def __init__(self, n: int, fixed: Sequence[int] = ()) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.ones(n))
        fixed_mask = torch.zeros(n, dtype=torch.bool)
        fixed_mask[list(fixed)] = True
        self.register_buffer("fixed", fixed_mask)

    def values(self) -> Tensor:
        """The binarised parameters, with the fixed ones at 1."""
        return torch.where(self.fixed, torch.ones_like(self.theta), ste_binarize(self.theta))

    def mask(self) -> Tensor:
        """The binary mask this masker applies (differentiable through the straight-through estimator)."""
        return self.values()

    def freeze(self) -> None:
        """Fix every element at 1 and stop training: the masked dimension keeps its full size."""
        self.fixed.fill_(True)
        self.trainable = False


class ChannelMasker(Masker):
    """Alpha: one element per output channel (or feature); channel 0 is always kept."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, fixed=(0,))


class TapMasker(Masker):
    """A mask over kernel taps computed as `binarise(C @ values)` with a fixed 0/1 matrix `C` [taps, params]."""

    def __init__(self, matrix: Tensor, fixed: Sequence[int]) -> None:
        super().__init__(matrix.shape[1], fixed)
        self.register_buffer("matrix", matrix.float())

    def mask(self) -> Tensor:
        """One 0/1 value per tap (tap `t` at distance `t` from the causal end)."""
        return ste_binarize(self.matrix @ self.values())


class BetaMasker(TapMasker):
    """Beta, the receptive field: `theta[r] = 1` asks for at least `r + 1` taps, counted from the causal end.

    Tap `t` is kept when any `theta[r]` with `r >= t` is 1, so the kept taps are always the `t < R` newest ones;
    `theta[0]` is fixed (a convolution keeps at least one tap).
    """

    def __init__(self, kernel_size: int) -> None:
        taps = torch.arange(kernel_size)
        super().__init__(taps[None, :] >= taps[:, None], fixed=(0,))


def dilation_levels(kernel_size: int) -> int:
    """How many dilations `1, 2, 4, ...` a kernel of `kernel_size` taps can take (`2^(levels-1) < kernel_size`)."""
    return 1 if kernel_size <= 1 else math.floor(math.log2(kernel_size - 1)) + 1


def _two_adic_valuation(t: int, cap: int) -> int:
    """The largest `v <= cap` such that `2^v` divides `t` (`cap` for `t = 0`)."""
    v = 0
    while v < cap and t % (2 ** (v + 1)) == 0:
        v += 1
    return v


class GammaMasker(TapMasker):
    """Gamma, the dilation: the layer's dilation factor is `2^j` for the smallest `j` with `theta[j] = 1`.

    Tap `t` is kept when any `theta[j]` with `2^j` dividing `t` is 1; the last element (the coarsest dilation) is
    fixed, so tap 0 and the taps at multiples of the coarsest dilation always stay.
    """

    def __init__(self, kernel_size: int) -> None:
        levels = dilation_levels(kernel_size)
        valuation = torch.tensor([_two_adic_valuation(t, levels - 1) for t in range(kernel_size)])
        super().__init__(torch.arange(levels)[None, :] <= valuation[:, None], fixed=(levels - 1,))
