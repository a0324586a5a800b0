"""Latency of convolutions and linear layers on a systolic array, exact (ceil) or smooth (for a search).

A convolution is lowered to a matrix product: its `k1·k2·c` reduction dimension is tiled over the `s1` rows of
the array and its `f` filters over the `s2` columns, and every tile streams the `h·w` output positions of each of
the `B` images:

    RUNTIME = ceil(k1·k2·c / s1) · ceil(f / s2) · h · w · B

`c` and `f` are counted per group, and the groups run one after the other (each is its own matrix product), so a
grouped convolution costs `groups` times that of one group; a depthwise convolution of `C` channels costs
`C · ceil(k1·k2 / s1) · ceil(1 / s2) · h · w · B`. A linear layer is a 1x1 convolution (`c` input features, `f`
output features, one position per sample, or one per leading position on inputs of more than two dimensions).
Pooling, normalisation and activations are free. The ceilings make the latency non-monotonic in channels:
`k1·k2·c = s1 + 1` needs two passes where `s1` needs one, and every `c` up to the next multiple costs the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hw.hardware import HARDWARE_MODELS, HardwareModel
from hw.layers import LayerShape, Number
from utils.errors import UsageError

Ceil = Callable[[Number], Number]
DEFAULT_ARRAY = (16, 16)


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


def _largest(value: Number) -> float:
    return float(value.detach().max()) if isinstance(value, Tensor) else float(value)


@HARDWARE_MODELS.register("systolic", unit="cycles", help="an s1 × s2 systolic array of processing elements")
@dataclass(frozen=True)
class SystolicArray(HardwareModel):
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

        def ceil(x: Number) -> Tensor:
            tensor = x if isinstance(x, Tensor) else torch.tensor(float(x))
            return smooth_ceil(tensor, self.temperature, limit)

        return ceil

    def layer_latency(self, layer: LayerShape, batch: int = 1) -> Number:
        """Cycles of one layer (module docstring); every ceiling is smooth when a count is a tensor."""
        if not layer.weighted:
            return 0
        ceil: Ceil = math.ceil
        if layer.is_soft:
            rows = _largest(layer.kernel_taps * layer.in_per_group) / self.rows
            ceil = self.ceil(max(rows, _largest(layer.out_per_group) / self.cols) + 1)
        return conv_runtime(
            layer.in_per_group,
            layer.out_per_group,
            layer.kernel_taps,
            layer.positions,
            self.shape,
            layer.groups,
            batch,
            ceil,
        )


def systolic_latency(
    model: nn.Module, input_shape: Sequence[int], array: Sequence[int] = DEFAULT_ARRAY, batch: int = 1
) -> int:
    """Exact latency of a plain model's conv / linear layers on an `s1 × s2` systolic array (see module doc)."""
    return SystolicArray(*array).latency(model, input_shape, batch)
