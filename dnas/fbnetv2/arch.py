"""Architecture definitions of a searchable chain: per layer its kind, maximum width, width and kernel choices.

`lenet_arch_def` is the default search space. Networks with residuals or squeeze-excitation (OFA MobileNetV3
subnets) are searched by the graph engine, `dnas.fbnetv2.graph.FBNetV2Graph`, not as chains.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from utils.errors import UsageError

DEFAULT_FRACTIONS = (0.25, 0.5, 0.75, 1.0)


def check_choices(fractions: Iterable[float], kernels: Iterable[int]) -> None:
    """A `UsageError` unless there are width fractions, all in (0, 1], and kernels, all odd and positive."""
    fractions, kernels = tuple(fractions), tuple(kernels)
    if not fractions or any(not 0 < f <= 1 for f in fractions):
        raise UsageError(f"width fractions must lie in (0, 1], got {fractions}")
    if not kernels or any(k < 1 or k % 2 == 0 for k in kernels):
        raise UsageError(f"kernel choices must be odd and positive, got {kernels}")


def fraction_widths(channels: int, fractions: Iterable[float]) -> list[int]:
    """The distinct widths `max(1, round(f · channels))` of the `fractions`, ascending."""
    return sorted({max(1, round(f * channels)) for f in fractions})


@dataclass(frozen=True)
class LayerDef:
    """One layer of the chain: conv (conv-BN-ReLU), dwconv (its width follows its input) or linear.

    `channels` is the maximum width (ignored by `dwconv`); the searched widths are `fractions` of it (at least one
    channel each) and the searched kernels are `kernels` (odd; the weights live at the largest). After the layer
    come an optional `pool × pool` max pooling and an optional global average pooling.
    """

    kind: str
    channels: int = 0
    fractions: tuple[float, ...] = (1.0,)
    kernels: tuple[int, ...] = (1,)
    stride: int = 1
    act: bool = True
    pool: int = 1
    avgpool: bool = False

    def __post_init__(self) -> None:
        check_choices(self.fractions, self.kernels)
        if self.kind == "linear" and self.kernels != (1,):
            raise UsageError("a linear layer has no kernel choices")

    def widths(self) -> list[int]:
        """The distinct searched output widths, ascending."""
        return fraction_widths(self.channels, self.fractions)


@dataclass(frozen=True)
class ArchDef:
    """A searchable chain of layers on inputs of `input_shape` (channels, height, width)."""

    input_shape: tuple[int, int, int]
    layers: tuple[LayerDef, ...]

    def scaled(self, fraction: float) -> ArchDef:
        """The fixed network at one uniform width `fraction` and the largest kernels (the last layer kept whole)."""
        fixed = [replace(d, fractions=(fraction,), kernels=(max(d.kernels),)) for d in self.layers[:-1]]
        last = replace(self.layers[-1], fractions=(1.0,), kernels=(max(self.layers[-1].kernels),))
        return replace(self, layers=(*fixed, last))


def lenet_arch_def(
    n_classes: int = 10,
    input_shape: tuple[int, int, int] = (3, 8, 8),
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS,
) -> ArchDef:
    """LeNet-style default: two conv layers (kernels 3 or 5, 2x2 max pooling) and three linear layers."""
    return ArchDef(
        input_shape,
        (
            LayerDef("conv", 32, fractions, (3, 5), pool=2),
            LayerDef("conv", 64, fractions, (3, 5), pool=2),
            LayerDef("linear", 120, fractions),
            LayerDef("linear", 84, fractions),
            LayerDef("linear", n_classes, act=False),
        ),
    )
