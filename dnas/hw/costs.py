"""Parameters and multiply-accumulates of conv1d / conv2d / linear layers.

Every function accepts plain numbers or tensors: given soft (differentiable) channel or tap counts it returns a
differentiable cost, so the same formulas serve as regularisers and as exact counters. Dilation changes neither
cost once the number of kernel taps and the output size are known, so it does not appear here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from utils.errors import UsageError
from utils.registry import Registry

Number = int | float | Tensor


def conv_params(in_per_group: Number, out_channels: Number, kernel_taps: Number, bias: bool = True) -> Number:
    """Weights (and biases) of a convolution: `out × in_per_group × taps (+ out)`."""
    weights = out_channels * in_per_group * kernel_taps
    return weights + out_channels if bias else weights


def conv_macs(in_per_group: Number, out_channels: Number, kernel_taps: Number, positions: Number) -> Number:
    """MACs of a convolution for one sample: `out × in_per_group × taps × output positions`."""
    return out_channels * in_per_group * kernel_taps * positions


def linear_params(in_features: Number, out_features: Number, bias: bool = True) -> Number:
    """Weights (and biases) of a linear layer."""
    return conv_params(in_features, out_features, 1, bias)


def linear_macs(in_features: Number, out_features: Number, positions: Number = 1) -> Number:
    """MACs of a linear layer applied at `positions` positions of one sample."""
    return conv_macs(in_features, out_features, 1, positions)


@dataclass(frozen=True)
class LayerShape:
    """What the costs of one conv / linear layer depend on; counts may be soft (tensors)."""

    in_per_group: Number  # input channels seen by each output channel (1 for a depthwise convolution)
    out_channels: Number
    kernel_taps: Number  # kernel elements per (input, output) pair: 1 for linear layers
    positions: Number  # output positions per sample: spatial size of the output, 1 for a linear layer on [N, F]
    bias: bool


COST_MODELS = Registry[Number]("cost model")


@COST_MODELS.register("size", "params")
def shape_params(shape: LayerShape) -> Number:
    """Parameters of a layer (weights plus bias)."""
    return conv_params(shape.in_per_group, shape.out_channels, shape.kernel_taps, shape.bias)


@COST_MODELS.register("macs")
def shape_macs(shape: LayerShape) -> Number:
    """Multiply-accumulates of a layer for one sample."""
    return conv_macs(shape.in_per_group, shape.out_channels, shape.kernel_taps, shape.positions)


def module_shape(module: nn.Module, out_shape: Sequence[int]) -> LayerShape:
    """The `LayerShape` of a plain Conv1d / Conv2d / Linear whose output (batch included) has `out_shape`."""
    if isinstance(module, nn.Linear):
        positions = math.prod(out_shape[1:-1])
        return LayerShape(module.in_features, module.out_features, 1, positions, module.bias is not None)
    if isinstance(module, nn.Conv1d | nn.Conv2d):
        return LayerShape(
            module.in_channels // module.groups,
            module.out_channels,
            math.prod(module.kernel_size),
            math.prod(out_shape[2:]),
            module.bias is not None,
        )
    raise UsageError(f"no cost model for {type(module).__name__}; supported: Conv1d, Conv2d, Linear")


def as_float(value: Number) -> float:
    """A cost as a plain float (no autograd graph)."""
    return float(value.detach()) if isinstance(value, Tensor) else float(value)
