"""What the costs of one layer depend on (`LayerShape`), and the registry of layer kinds that produce one.

A layer is `groups` independent matrix products: each reads `in_per_group × kernel_taps` inputs per output and
writes `out_channels / groups` outputs, at each of `positions` output positions of one sample. Convolutions, linear
layers and pooling windows (a fixed-weight depthwise convolution) all fit. Counts may be plain numbers (exact
costs) or tensors (soft counts of a search, or broadcast grids of choices): every cost formula accepts both.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from hw.tracer import LayerCall, trace
from utils.errors import UsageError
from utils.registry import Registry

Number = int | float | Tensor
Shape = Sequence[int]
COUNTS = ("in_per_group", "out_channels", "kernel_taps", "positions", "in_positions", "groups")


def as_float(value: Number) -> float:
    """A scalar cost as a plain float (no autograd graph)."""
    return float(value.detach()) if isinstance(value, Tensor) else float(value)


@dataclass(frozen=True)
class LayerShape:
    """The geometry of one layer for one sample; see the module docstring.

    `in_positions` is the number of positions of the input (the live-tensor size needs it). `weighted` is False
    for a pooling window, whose fixed weights are no parameters and which runs on no array.
    """

    in_per_group: Number  # inputs of each output per tap: input channels / groups (1 for a depthwise convolution)
    out_channels: Number
    kernel_taps: Number  # kernel elements per (input, output) pair: 1 for a linear layer
    positions: Number  # output positions per sample: spatial size of the output, 1 for a linear layer on [N, F]
    in_positions: Number  # input positions per sample
    groups: Number = 1
    bias: bool = False
    weighted: bool = True

    @property
    def in_channels(self) -> Number:
        """Input channels (features) of the whole layer."""
        return self.in_per_group * self.groups

    @property
    def out_per_group(self) -> Number:
        """Output channels of each group."""
        if isinstance(self.out_channels, Tensor) or isinstance(self.groups, Tensor):
            return self.out_channels / self.groups
        return self.out_channels // self.groups

    @property
    def is_soft(self) -> bool:
        """Whether any count is a tensor (then costs are differentiable, and ceilings smooth)."""
        return any(isinstance(getattr(self, name), Tensor) for name in COUNTS)

    def as_tensors(self, dtype: torch.dtype = torch.float64) -> LayerShape:
        """The same shape with every count a tensor: the soft form a search evaluates."""
        return replace(self, **{name: torch.as_tensor(getattr(self, name), dtype=dtype) for name in COUNTS})


LAYER_KINDS = Registry[LayerShape]("layer kind")


@LAYER_KINDS.register(
    "conv",
    modules=(nn.Conv1d, nn.Conv2d),
    example=lambda: (nn.Conv2d(4, 6, (3, 1), stride=2, groups=2), (4, 9, 5)),
    help="convolutions, grouped and depthwise included",
)
def conv_shape(module: nn.Module, in_shape: Shape, out_shape: Shape) -> LayerShape:
    """The shape of a Conv1d / Conv2d from its input and output shapes (batch included)."""
    return LayerShape(
        module.in_channels // module.groups,
        module.out_channels,
        math.prod(module.kernel_size),
        math.prod(out_shape[2:]),
        math.prod(in_shape[2:]),
        module.groups,
        module.bias is not None,
    )


@LAYER_KINDS.register(
    "linear",
    modules=(nn.Linear,),
    example=lambda: (nn.Linear(12, 5), (3, 12)),
    help="linear layers, applied at every leading position of inputs of more than two dimensions",
)
def linear_shape(module: nn.Module, in_shape: Shape, out_shape: Shape) -> LayerShape:
    """The shape of a Linear: a 1-tap convolution over the leading positions."""
    positions = math.prod(out_shape[1:-1])
    return LayerShape(module.in_features, module.out_features, 1, positions, positions, 1, module.bias is not None)


@LAYER_KINDS.register(
    "pool",
    modules=(nn.AvgPool1d, nn.AvgPool2d, nn.MaxPool1d, nn.MaxPool2d),
    example=lambda: (nn.MaxPool2d(3, 2, 1), (3, 7, 7)),
    help="average / max pooling windows: a fixed-weight depthwise convolution (MACs, no parameters)",
)
def pool_shape(module: nn.Module, in_shape: Shape, out_shape: Shape) -> LayerShape:
    """The shape of a pooling window: one tap per window element, one group per channel."""
    kernel = module.kernel_size
    taps = math.prod(kernel) if isinstance(kernel, tuple) else kernel ** (len(out_shape) - 2)
    channels = out_shape[1]
    return LayerShape(1, channels, taps, math.prod(out_shape[2:]), math.prod(in_shape[2:]), channels, weighted=False)


def layer_kind(module: nn.Module) -> str | None:
    """The name of the layer kind whose modules include `module`'s type (subclasses too), or None."""
    return next((e.name for e in LAYER_KINDS.entries() if isinstance(module, e.meta["modules"])), None)


def module_shape(module: nn.Module, in_shape: Shape, out_shape: Shape) -> LayerShape:
    """The `LayerShape` of a plain layer called on `in_shape` giving `out_shape` (batch included)."""
    kind = layer_kind(module)
    if kind is None:
        modules = ", ".join(m.__name__ for e in LAYER_KINDS.entries() for m in e.meta["modules"])
        raise UsageError(f"no layer kind for {type(module).__name__}; supported: {modules}")
    return LAYER_KINDS.get(kind)(module, in_shape, out_shape)


def call_shapes(calls: Iterable[LayerCall], kinds: Iterable[str] | None = None) -> list[LayerShape]:
    """The shapes of the traced calls whose layer kind is in `kinds` (every registered kind by default)."""
    wanted = set(LAYER_KINDS.names(aliases=False) if kinds is None else kinds)
    return [module_shape(c.module, c.inputs[0], c.output) for c in calls if layer_kind(c.module) in wanted]


def layer_shapes(model: nn.Module, input_shape: Shape, kinds: Iterable[str] | None = None) -> list[LayerShape]:
    """The exact shapes of the layers (of `kinds`) that `model` runs on one sample of `input_shape`, in order."""
    return call_shapes(trace(model, input_shape), kinds)
