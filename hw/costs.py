"""Per-layer cost models, registered by name, and how a network's cost is assembled from its layers' costs.

Every cost model is a function `cost(layer: LayerShape, hardware) -> Number` that accepts plain or tensor counts:
given soft (differentiable) channel or tap counts it returns a differentiable cost, so the same formula serves as
a regulariser and as an exact counter. Its metadata says what it measures:

- `unit`: what the number counts;
- `reduce`: `sum` (the network's cost is the sum over its layers) or `max` (the largest layer's, e.g. a peak);
- `smooth`: True when the tensor form only approximates the exact one (the latency's smooth ceiling); a cost
  model whose formula is a polynomial of the counts has the exact value in both forms.

Dilation changes no cost once the number of kernel taps and the output size are known, so it does not appear.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

from hw.hardware import HardwareModel, create_hardware
from hw.layers import LayerShape, Number
from utils.registry import Registry

COST_MODELS = Registry[Number]("cost model")
REDUCTIONS = ("sum", "max")


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


@COST_MODELS.register("params", "size", unit="parameters", reduce="sum", smooth=False)
def layer_params(layer: LayerShape, hardware: HardwareModel | None = None) -> Number:
    """Parameters of a layer: its weights and biases (none for a pooling window)."""
    if not layer.weighted:
        return 0
    return conv_params(layer.in_per_group, layer.out_channels, layer.kernel_taps, layer.bias)


@COST_MODELS.register("macs", unit="MACs", reduce="sum", smooth=False)
def layer_macs(layer: LayerShape, hardware: HardwareModel | None = None) -> Number:
    """Multiply-accumulates of a layer for one sample (a pooling window counts one per tap)."""
    return conv_macs(layer.in_per_group, layer.out_channels, layer.kernel_taps, layer.positions)


@COST_MODELS.register("activations", unit="elements", reduce="sum", smooth=False)
def layer_activations(layer: LayerShape, hardware: HardwareModel | None = None) -> Number:
    """Output elements of a layer for one sample."""
    return layer.out_channels * layer.positions


@COST_MODELS.register("peak_act", unit="elements", reduce="max", smooth=False)
def layer_peak_activations(layer: LayerShape, hardware: HardwareModel | None = None) -> Number:
    """Elements alive while a layer runs on one sample: its input plus its output (the network's is the maximum)."""
    return layer.in_channels * layer.in_positions + layer.out_channels * layer.positions


@COST_MODELS.register("latency", unit="hardware units", reduce="sum", smooth=True)
def layer_latency(layer: LayerShape, hardware: HardwareModel | None = None) -> Number:
    """Latency of a layer for one sample on `hardware` (default the 16 × 16 systolic array); smooth on tensors."""
    return create_hardware(hardware).layer_latency(layer)


def combine(name: str, values: Sequence[Number]) -> Number:
    """A network's cost from its layers' costs under cost model `name`: their sum or maximum (0 without layers)."""
    reduce = COST_MODELS.meta(name)["reduce"]
    tensors = [v for v in values if isinstance(v, Tensor)]
    if not tensors:
        return max(values, default=0) if reduce == "max" else sum(values)
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    stacked = torch.stack([torch.as_tensor(v, dtype=dtype, device=tensors[0].device) for v in values])
    return stacked.amax() if reduce == "max" else stacked.sum()


def network_cost(name: str, layers: Iterable[LayerShape], hardware: HardwareModel | None = None) -> Number:
    """The cost under `name` of a network made of `layers`: exact on plain counts, differentiable on tensors."""
    cost = COST_MODELS.get(name)
    return combine(name, [cost(layer, hardware) for layer in layers])


def list_cost_models() -> list[str]:
    """The registered cost model names, aliases included."""
    return COST_MODELS.names()
