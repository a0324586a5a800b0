"""Latency of convolutions and linear layers on a systolic array, exact (ceil) or smooth (for a search).

A convolution is lowered to a matrix product: its `k1·k2·c` reduction dimension is tiled over the `s1` rows of
the array and its `f` filters over the `s2` columns, and every tile streams the `h·w` output positions of each of
the `B` images:

    RUNTIME = ceil(k1·k2·c / s1) · ceil(f / s2) · h · w · B

`c` and `f` are counted per group, and the groups run one after the other (each is its own matrix product), so a
grouped convolution costs `groups` times that of one group; a depthwise convolution of `C` channels costs
`C · ceil(k1·k2 / s1) · ceil(1 / s2) · h · w · B`. A linear layer is a 1x1 convolution (`c` input features, `f`
output features, one position per sample, or one per leading position on inputs of more than two dimensions).
The ceilings make the latency non-monotonic in channels: `k1·k2·c = s1 + 1` needs two passes where `s1` needs one,
and every `c` up to the next multiple costs the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dnas.hw.costs import COST_MODELS, LayerShape, Number, as_float
from utils.errors import UsageError
from utils.registry import Registry

Ceil = Callable[[Number], Number]
DEFAULT_ARRAY = (16, 16)
LATENCY_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Linear)


def smooth_ceil(x: Tensor, temperature: float, limit: float) -> Tensor:
    """`f_T(x) = Σ_i sigmoid(T·(x − i))` for `i = 0 … ceil(limit) − 1`: ≈ `ceil(x)` on `(0, limit]`, differentiable.

    Between integers the error is about `sigmoid(−T·d)` at distance `d` from the nearest step, so it vanishes as
    `T` grows; at an integer itself the step is half taken.
    """
    steps = torch.arange(max(1, math.ceil(limit)), dtype=x.dtype, device=x.device)
    return torch.sigmoid(temperature * (x.unsqueeze(-1) - steps)).sum(-1)


def conv_runtime(
    in_per_group: Number,
    out_per_group: Number,
    kernel_taps: Number,
    positions: Number,
    array: Sequence[int] = DEFAULT_ARRAY,
    groups: Number = 1,
    batch: int = 1,
    ceil: Ceil = math.ceil,
) -> Number:
    """`groups · ceil(taps·c / s1) · ceil(f / s2) · positions · batch`; `ceil` may be a smooth ceiling."""
    rows, cols = array
    return groups * ceil(kernel_taps * in_per_group / rows) * ceil(out_per_group / cols) * positions * batch


def trace_layers(model: nn.Module, input_shape: Sequence[int]) -> list[tuple[nn.Module, torch.Size]]:
    """The conv / linear leaf modules run by `model` on one input of `input_shape` (no batch), with output shapes."""
    records: list[tuple[nn.Module, torch.Size]] = []
    hooks = [
        m.register_forward_hook(lambda mod, _, out: records.append((mod, out.shape)))
        for m in model.modules()
        if isinstance(m, LATENCY_LAYERS)
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return records


def module_runtime(module: nn.Module, out_shape: Sequence[int], array: Sequence[int], batch: int = 1) -> int:
    """Exact runtime of one plain Conv1d / Conv2d / Linear whose output (batch 1 included) has `out_shape`."""
    if isinstance(module, nn.Linear):
        return conv_runtime(module.in_features, module.out_features, 1, math.prod(out_shape[1:-1]), array, 1, batch)
    if isinstance(module, nn.Conv1d | nn.Conv2d):
        g = module.groups
        taps, positions = math.prod(module.kernel_size), math.prod(out_shape[2:])
        return conv_runtime(module.in_channels // g, module.out_channels // g, taps, positions, array, g, batch)
    raise UsageError(f"no latency model for {type(module).__name__}; supported: Conv1d, Conv2d, Linear")


@dataclass(frozen=True)
class SystolicArray:
    """A systolic array of `rows × cols` processing elements (`s1 × s2`) and the smooth ceiling's temperature."""

    rows: int = DEFAULT_ARRAY[0]
    cols: int = DEFAULT_ARRAY[1]
    temperature: float = 10.0

    def __post_init__(self) -> None:
        if self.rows < 1 or self.cols < 1 or self.temperature <= 0:
            raise UsageError(f"a systolic array needs rows, cols >= 1 and temperature > 0, got {self}")

    @property
    def shape(self) -> tuple[int, int]:
        """`(s1, s2)`."""
        return self.rows, self.cols

    def ceil(self, limit: float) -> Ceil:
        """The smooth ceiling at this temperature for arguments up to `limit` (in units of the array dimension)."""
        return lambda x: smooth_ceil(torch.as_tensor(x, dtype=torch.float32), self.temperature, limit)

    def latency(self, model: nn.Module, input_shape: Sequence[int], batch: int = 1) -> int:
        """Exact latency (cycles) of a plain model on `batch` inputs of `input_shape`: the sum over its layers."""
        return sum(module_runtime(m, out, self.shape, batch) for m, out in trace_layers(model, input_shape))


HARDWARE_MODELS = Registry[SystolicArray]("hardware model")
HARDWARE_MODELS.register("systolic")(SystolicArray)


def systolic_latency(
    model: nn.Module, input_shape: Sequence[int], array: Sequence[int] = DEFAULT_ARRAY, batch: int = 1
) -> int:
    """Exact latency of a plain model's conv / linear layers on an `s1 × s2` systolic array (see module doc)."""
    return SystolicArray(*array).latency(model, input_shape, batch)


@COST_MODELS.register("systolic")
def shape_latency(shape: LayerShape) -> Number:
    """Runtime of a dense (ungrouped) layer for one sample on the default array; smooth when counts are tensors.

    A `LayerShape` does not know its groups: use `conv_runtime` with `groups` for grouped or depthwise layers.
    """
    array = SystolicArray()
    smooth = any(isinstance(v, Tensor) for v in (shape.in_per_group, shape.out_channels, shape.kernel_taps))
    if not smooth:
        return conv_runtime(shape.in_per_group, shape.out_channels, shape.kernel_taps, shape.positions, array.shape)
    rows, cols = (
        as_float(shape.in_per_group * shape.kernel_taps) / array.rows,
        as_float(shape.out_channels) / array.cols,
    )
    ceil = array.ceil(max(rows, cols) + 1)
    return conv_runtime(
        shape.in_per_group, shape.out_channels, shape.kernel_taps, shape.positions, array.shape, ceil=ceil
    )
