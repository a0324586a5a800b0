"""Counting parameters and MACs of a module at its actual shapes, with the `dnas.hw` formulas.

Convolutions and linear layers use `conv_params` / `conv_macs`; batch norm counts its affine parameters; pooling
has no parameters and counts one MAC per window tap and output element (a fixed-weight depthwise convolution), so
a `Memory` search sees pooling as free while a `Compute` search does not. Other layers (ReLU, identity) are free.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dnas.hw import as_float, conv_macs, conv_params, module_shape


@dataclass(frozen=True)
class Cost:
    """Parameters and multiply-accumulates (per sample) of a module."""

    params: float = 0.0
    macs: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.params + other.params, self.macs + other.macs)


def _conv_or_linear(module: nn.Module, out: Tensor) -> Cost:
    shape = module_shape(module, out.shape)
    params = conv_params(shape.in_per_group, shape.out_channels, shape.kernel_taps, shape.bias)
    macs = conv_macs(shape.in_per_group, shape.out_channels, shape.kernel_taps, shape.positions)
    return Cost(as_float(params), as_float(macs))


def _pool(module: nn.Module, out: Tensor) -> Cost:
    kernel = module.kernel_size
    taps = math.prod(kernel) if isinstance(kernel, tuple) else kernel**2
    return Cost(0.0, as_float(conv_macs(1, out.shape[1], taps, math.prod(out.shape[2:]))))


def _norm(module: nn.Module, out: Tensor) -> Cost:
    return Cost(float(sum(p.numel() for p in module.parameters(recurse=False))), 0.0)


LAYER_COSTS: dict[type[nn.Module], Callable[[nn.Module, Tensor], Cost]] = {
    nn.Conv2d: _conv_or_linear,
    nn.Conv1d: _conv_or_linear,
    nn.Linear: _conv_or_linear,
    nn.AvgPool2d: _pool,
    nn.MaxPool2d: _pool,
    nn.BatchNorm2d: _norm,
    nn.BatchNorm1d: _norm,
}


@torch.no_grad()
def layer_costs(model: nn.Module, run: Callable[[], object]) -> dict[nn.Module, Cost]:
    """The cost of every counted layer of `model` during `run()` (a forward pass with batch 1)."""
    costs: dict[nn.Module, Cost] = {}

    def hook(module: nn.Module, _inputs: object, out: Tensor) -> None:
        costs[module] = costs.get(module, Cost()) + LAYER_COSTS[type(module)](module, out)

    handles = [m.register_forward_hook(hook) for m in model.modules() if type(m) in LAYER_COSTS]
    was_training = model.training
    model.eval()
    try:
        run()
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return costs


def module_cost(module: nn.Module, costs: dict[nn.Module, Cost]) -> Cost:
    """The summed cost of the counted layers inside `module`."""
    return sum((costs.get(m, Cost()) for m in module.modules()), Cost())


def measure(model: nn.Module, input_shape: tuple[int, ...]) -> Cost:
    """Parameters and MACs per sample of `model` on one input of `input_shape` (without batch)."""
    device = next(model.parameters()).device
    x = torch.zeros(1, *input_shape, device=device)
    return module_cost(model, layer_costs(model, lambda: model(x)))
