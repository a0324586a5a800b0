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
REDUCTION_STRIDE: dict[str, Stride] = {"1d": (2, 1), "2d": (2, 2)}
_SPACES: dict[str, tuple[str, ...]] = {}


def register_operation(name: str, *spaces: str) -> Callable[[OperationFactory], OperationFactory]:
    """Decorator recording `factory(channels, stride, affine)` as primitive `name` of the given spaces (`1d`, `2d`)."""
    unknown = set(spaces) - set(REDUCTION_STRIDE)
    if unknown or not spaces:
        raise ValueError(f"operation {name!r}: spaces must be among {sorted(REDUCTION_STRIDE)}, got {spaces}")

    def decorator(factory: OperationFactory) -> OperationFactory:
        OPERATIONS.register(name)(factory)
        _SPACES[name] = spaces
        return factory

    return decorator


def operation_spaces(name: str) -> tuple[str, ...]:
    """The spaces (`1d`, `2d`) primitive `name` belongs to; an unknown name is a `UsageError`."""
    OPERATIONS.get(name)
    return _SPACES[name]


def create_operation(name: str, channels: int, stride: Stride, affine: bool = True) -> nn.Module:
    """Build primitive `name` on `channels` channels with a `(time/height, width)` stride."""
    return OPERATIONS.get(name)(channels, stride, affine)


def check_primitives(primitives: list[str], space: str) -> None:
    """Raise a `UsageError` unless every name is a registered primitive of `space`."""
    if space not in REDUCTION_STRIDE:
        raise UsageError(f"unknown DARTS space {space!r}; choose one of: {', '.join(REDUCTION_STRIDE)}")
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
_KERNELS: dict[str, dict[str, tuple[int, ...]]] = {
    "1d": {"conv_bn_relu": (1, 3, 5, 7), "sep_conv": (3, 5, 7), "dil_conv": (3, 5), "avg_pool": (3,), "max_pool": (3,)},
    "2d": {"sep_conv": (3, 5), "dil_conv": (3, 5), "avg_pool": (3,), "max_pool": (3,)},
}


@register_operation("none", "1d", "2d")
def none(channels: int, stride: Stride, affine: bool) -> nn.Module:
    """No connection (zeros)."""
    return Zero(stride)


@register_operation("skip_connect", "1d", "2d")
def skip_connect(channels: int, stride: Stride, affine: bool) -> nn.Module:
    """Identity at stride 1, a factorized reduce at stride 2."""
    return nn.Identity() if stride == (1, 1) else FactorizedReduce(channels, channels, stride, affine)


for _space, _families in _KERNELS.items():
    for _family, _sizes in _families.items():
        for _k in _sizes:
            _one_d = _space == "1d"
            register_operation(f"{_family}_{_k}x{1 if _one_d else _k}", _space)(
                partial(_FAMILIES[_family], k=_k, one_d=_one_d)
            )
