"""The registry of DARTS primitives (candidate operations on one edge of a cell).

Every primitive is built by `factory(channels, stride, affine) -> nn.Module`, keeps its channels and maps a
`(B, C, H, W)` tensor to `(B, C, ceil(H / stride[0]), ceil(W / stride[1]))`. The 1-D primitives (names ending in
`x1`) are 2-D convolutions with `(k, 1)` kernels on `(B, C, T, 1)` tensors; their space reduces with stride
`(2, 1)`, so only time is halved.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from utils.errors import UsageError
from utils.registry import Registry

Stride = tuple[int, int]
OperationFactory = Callable[[int, Stride, bool], nn.Module]

OPERATIONS = Registry[nn.Module]("DARTS operation")
"""The primitives; metadata: `spaces` (the spaces they belong to) and `default` (in those spaces' default lists)."""
REDUCTION_STRIDE: dict[str, Stride] = {"1d": (2, 1), "2d": (2, 2)}
SPACES = tuple(REDUCTION_STRIDE)


def register_operation(
    name: str, *spaces: str, default: bool = False
) -> Callable[[OperationFactory], OperationFactory]:
    """Decorator recording `factory(channels, stride, affine)` as primitive `name` of the given spaces (`1d`, `2d`).

    `default` puts it in the default primitive list of its spaces, after the primitives registered before it.
    """
    unknown = set(spaces) - set(SPACES)
    if unknown or not spaces:
        raise ValueError(f"operation {name!r}: spaces must be among {sorted(SPACES)}, got {spaces}")
    return OPERATIONS.register(name, spaces=spaces, default=default)


def operation_spaces(name: str) -> tuple[str, ...]:
    """The spaces (`1d`, `2d`) primitive `name` belongs to; an unknown name is a `UsageError`."""
    return OPERATIONS.meta(name)["spaces"]


def default_primitives(space: str) -> list[str]:
    """The default candidate operations of `space`, `none` first, in registration order (genotypes index them)."""
    check_space(space)
    return [e.name for e in OPERATIONS.entries() if e.meta["default"] and space in e.meta["spaces"]]


def create_operation(name: str, channels: int, stride: Stride, affine: bool = True) -> nn.Module:
    """Build primitive `name` on `channels` channels with a `(time/height, width)` stride."""
    return OPERATIONS.get(name)(channels, stride, affine)


def check_space(space: str) -> None:
    """Raise a `UsageError` unless `space` is a DARTS space (`1d`, `2d`)."""
    if space not in SPACES:
        raise UsageError(f"unknown DARTS space {space!r}; choose one of: {', '.join(SPACES)}")


def check_primitives(primitives: list[str], space: str) -> None:
    """Raise a `UsageError` unless every name is a registered primitive of `space`."""
    check_space(space)
    wrong = [p for p in primitives if space not in operation_spaces(p)]
    if wrong:
        raise UsageError(f"operations {wrong} are not primitives of the {space} space")


class Zero(nn.Module):
    """The `none` primitive: zeros of the strided shape."""

    def __init__(self, stride: Stride) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        """Zeros shaped like `x` subsampled by the stride."""
        return x[:, :, :: self.stride[0], :: self.stride[1]].mul(0.0)


class FactorizedReduce(nn.Module):
    """Strided 1x1 convolutions on the input and on the input shifted by one step, concatenated (skip at stride 2)."""

    def __init__(self, c_in: int, c_out: int, stride: Stride, affine: bool = True) -> None:
        super().__init__()
        self.stride = stride
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=stride, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=stride, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: Tensor) -> Tensor:
        """Half the channels from even positions, half from odd positions (along every strided axis)."""
        x = self.relu(x)
        shift_h, shift_w = (int(s > 1) for s in self.stride)
        shifted = F.pad(x, (0, shift_w, 0, shift_h))[:, :, shift_h:, shift_w:]
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


def relu_conv_bn(c_in: int, c_out: int, affine: bool = True) -> nn.Sequential:
    """ReLU, 1x1 convolution, batch norm: the cell's input preprocessing."""
    return nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(c_in, c_out, 1, bias=False),
        nn.BatchNorm2d(c_out, affine=affine),
    )


def _geometry(k: int, dilation: int, one_d: bool) -> dict[str, tuple[int, int]]:
    """Kernel, padding and dilation of a `k`-tap window: `(k, 1)` in 1-D, `(k, k)` in 2-D; 'same' padding."""
    pad = dilation * (k - 1) // 2
    if one_d:
        return {"kernel_size": (k, 1), "padding": (pad, 0), "dilation": (dilation, 1)}
    return {"kernel_size": (k, k), "padding": (pad, pad), "dilation": (dilation, dilation)}


def _conv_bn_relu(channels: int, stride: Stride, affine: bool, *, k: int, one_d: bool) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, channels, stride=stride, bias=False, **_geometry(k, 1, one_d)),
        nn.BatchNorm2d(channels, affine=affine),
        nn.ReLU(inplace=False),
    )


def _dil_conv(channels: int, stride: Stride, affine: bool, *, k: int, one_d: bool, dilation: int = 2) -> nn.Module:
    return nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(channels, channels, stride=stride, groups=channels, bias=False, **_geometry(k, dilation, one_d)),
        nn.Conv2d(channels, channels, 1, bias=False),
        nn.BatchNorm2d(channels, affine=affine),
    )


def _sep_conv(channels: int, stride: Stride, affine: bool, *, k: int, one_d: bool) -> nn.Module:
    return nn.Sequential(
        _dil_conv(channels, stride, affine, k=k, one_d=one_d, dilation=1),
        _dil_conv(channels, (1, 1), affine, k=k, one_d=one_d, dilation=1),
    )


def _pool(
    channels: int, stride: Stride, affine: bool, *, k: int, one_d: bool, pool: Callable[..., nn.Module]
) -> nn.Module:
    geometry = _geometry(k, 1, one_d)
    return pool(geometry["kernel_size"], stride=stride, padding=geometry["padding"])


_FAMILIES: dict[str, Callable[..., nn.Module]] = {
    "conv_bn_relu": _conv_bn_relu,
    "sep_conv": _sep_conv,
    "dil_conv": _dil_conv,
    "avg_pool": partial(_pool, pool=partial(nn.AvgPool2d, count_include_pad=False)),
    "max_pool": partial(_pool, pool=nn.MaxPool2d),
}


def _register_family(family: str, space: str, sizes: tuple[int, ...]) -> None:
    """Register `{family}_{k}x1` (1-D) or `{family}_{k}x{k}` (2-D) for every size `k`, as default primitives."""
    for k in sizes:
        one_d = space == "1d"
        name = f"{family}_{k}x{1 if one_d else k}"
        register_operation(name, space, default=True)(partial(_FAMILIES[family], k=k, one_d=one_d))


# Registration order is the order of the default lists, which genotypes and alphas index: none first, then the
# 2-D pools, skip_connect, the 1-D operations, the 2-D convolutions.
@register_operation("none", "1d", "2d", default=True)
def none(channels: int, stride: Stride, affine: bool) -> nn.Module:
    """No connection (zeros)."""
    return Zero(stride)


_register_family("max_pool", "2d", (3,))
_register_family("avg_pool", "2d", (3,))


@register_operation("skip_connect", "1d", "2d", default=True)
def skip_connect(channels: int, stride: Stride, affine: bool) -> nn.Module:
    """Identity at stride 1, a factorized reduce at stride 2."""
    return nn.Identity() if stride == (1, 1) else FactorizedReduce(channels, channels, stride, affine)


_register_family("avg_pool", "1d", (3,))
_register_family("max_pool", "1d", (3,))
_register_family("conv_bn_relu", "1d", (1, 3, 5, 7))
_register_family("sep_conv", "1d", (3, 5, 7))
_register_family("dil_conv", "1d", (3, 5))
_register_family("sep_conv", "2d", (3, 5))
_register_family("dil_conv", "2d", (3, 5))
