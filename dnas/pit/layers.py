"""Searchable layers: PITConv1d, PITConv2d, PITLinear, and batch norms that follow the channel masks.

Each is a subclass of the plain PyTorch layer (same constructor, same weights) that multiplies its weights by
its masks: output channels by `out_masker` (alpha, possibly shared with other layers), for `PITConv1d` the
kernel taps by beta (receptive field) and gamma (dilation), and for `PITConv2d` by an optional `kernel_masker`
(centred square kernels, set by FBNetV2's kernel choice). With every mask at 1 it computes exactly what the plain
layer computes. `export_module()` gives the plain layer with the masked channels and taps removed.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from dnas.pit.features import ConstFeatures, FeaturesCalculator
from dnas.pit.masks import BaseMasker, BetaMasker, ChannelMasker, GammaMasker
from hw import LayerShape, as_float
from hw.layers import COUNTS
from utils.errors import UsageError
from utils.registry import Registry


def alive(mask: Tensor) -> Tensor:
    """Indices of the ones of a 0/1 mask."""
    return torch.nonzero(mask.detach() > 0.5).flatten()


def _first_tensor(module: nn.Module) -> Tensor | None:
    return next(iter(module.state_dict().values()), None)


def _factory_kwargs(module: nn.Module) -> dict[str, Any]:
    tensor = _first_tensor(module)
    return {} if tensor is None else {"device": tensor.device, "dtype": tensor.dtype}


class PITModule(nn.Module):
    """Base of the modules PIT puts in a network: their output channels follow `out_masker`.

    Subclasses also derive from a plain layer (`plain_type`) and take its constructor arguments.
    """

    plain_type: ClassVar[type[nn.Module]]
    out_masker: BaseMasker

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.out_masker = ChannelMasker(self.n_out()).to(self.device())
        self.in_features_calc: FeaturesCalculator = ConstFeatures(self.n_in())

    def device(self) -> torch.device:
        """Where the layer's weights live (maskers are created there)."""
        tensor = _first_tensor(self)
        return torch.device("cpu") if tensor is None else tensor.device

    def n_in(self) -> int:
        """Input channels (features) of the full layer."""
        raise NotImplementedError

    def n_out(self) -> int:
        """Output channels (features) of the full layer."""
        raise NotImplementedError

    @property
    def propagates(self) -> bool:
        """True when the output channels are the input channels (batch norm, depthwise convolution)."""
        return False

    @staticmethod
    def hparams(module: nn.Module) -> dict[str, Any]:
        """The constructor arguments that rebuild `module`."""
        raise NotImplementedError

    @classmethod
    def from_module(cls, module: nn.Module) -> PITModule:
        """The searchable version of a plain layer, with its weights, device, dtype and training mode."""
        new = cls(**cls.hparams(module), **_factory_kwargs(module))
        missing, unexpected = new.load_state_dict(module.state_dict(), strict=False)
        if unexpected or any(not key.endswith(("theta", "fixed", "matrix")) for key in missing):
            raise RuntimeError(f"cannot copy the state of {module} into {cls.__name__}: {missing} {unexpected}")
        return new.train(module.training)

    def out_mask(self) -> Tensor:
        """The 0/1 mask of the output channels."""
        return self.out_masker.mask()

    def export_module(self) -> nn.Module:
        """The plain layer with the masked channels (and taps) removed."""
        raise NotImplementedError


class PITLayer(PITModule):
    """A searchable conv / linear layer: masked weights, and a `LayerShape` for the cost models."""

    positions: int = 1  # output positions per sample, set from the traced shapes
    in_positions: int = 1  # input positions per sample, likewise

    def kernel_mask(self) -> Tensor | None:
        """The mask of the kernel elements, shaped like the kernel (`None`: all taps, not searched)."""
        return None

    def kernel_taps(self) -> Tensor | int:
        """The (soft) number of alive kernel taps."""
        taps = self.kernel_mask()
        return math.prod(getattr(self, "kernel_size", (1,))) if taps is None else taps.sum()

    def layer_shape(self) -> LayerShape:
        """The soft shape of the current architecture, differentiable with respect to the masks."""
        out = self.out_mask().sum()
        in_per_group = 1 if self.propagates else self.in_features_calc.features(self.weight.device)
        groups = out if self.propagates else 1
        taps = self.kernel_taps()
        return LayerShape(in_per_group, out, taps, self.positions, self.in_positions, groups, self.bias is not None)

    def exact_shape(self) -> LayerShape:
        """`layer_shape()` with integer counts: the exact shape of the exported layer (masks must be 0/1)."""
        shape = self.layer_shape()
        return replace(shape, **{name: round(as_float(getattr(shape, name))) for name in COUNTS})

    def masked_parameters(self) -> tuple[Tensor, Tensor | None]:
        """Weight and bias multiplied by the masks."""
        out_mask = self.out_mask()
        weight = self.weight * out_mask.view(-1, *[1] * (self.weight.dim() - 1))
        taps = self.kernel_mask()
        if taps is not None:
            weight = weight * taps
        return weight, None if self.bias is None else self.bias * out_mask

    def compute(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """The plain layer's operation with the given weights."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """The plain layer's output with masked weights."""
        return self.compute(x, *self.masked_parameters())

    def alive_inputs(self) -> Tensor:
        """Indices of the input channels (features) kept by export."""
        return alive(self.in_features_calc.mask(self.weight.device))


class PITConvNd(PITLayer):
    """What PITConv1d and PITConv2d share: channel masks, depthwise convolutions and export."""

    @staticmethod
    def hparams(module: nn.Module) -> dict[str, Any]:
        """Constructor arguments of a plain convolution."""
        names = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups")
        return {
            **{n: getattr(module, n) for n in names},
            "bias": module.bias is not None,
            "padding_mode": module.padding_mode,
        }

    @classmethod
    def convertible(cls, module: nn.Module) -> bool:
        """Plain or depthwise convolutions; other grouped convolutions are not searched."""
        return module.groups == 1 or module.groups == module.in_channels == module.out_channels

    def n_in(self) -> int:
        """Input channels."""
        return self.in_channels

    def n_out(self) -> int:
        """Output channels."""
        return self.out_channels

    @property
    def propagates(self) -> bool:
        """Depthwise convolutions keep the channels of their input."""
        return self.groups > 1

    def compute(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """Convolution with the given weights."""
        return self._conv_forward(x, weight, bias)

    def export_taps(self, weight: Tensor) -> tuple[nn.Module | None, Tensor, dict[str, Any]]:
        """An optional padding module, the kept kernel taps, and the convolution's geometry arguments."""
        return None, weight, {"padding": self.padding, "dilation": self.dilation}

    def export_module(self) -> nn.Module:
        """The plain convolution with pruned channels (and, for 1-D, shortened and dilated kernels)."""
        out_idx = alive(self.out_mask())
        weight = self.weight[out_idx] if self.propagates else self.weight[out_idx][:, self.alive_inputs()]
        pad, weight, geometry = self.export_taps(weight.detach())
        groups = len(out_idx) if self.propagates else 1
        conv = self.plain_type(
            weight.shape[1] * groups,
            len(out_idx),
            tuple(weight.shape[2:]),
            stride=self.stride,
            groups=groups,
            bias=self.bias is not None,
            padding_mode=self.padding_mode,
            device=weight.device,
            dtype=weight.dtype,
            **geometry,
        )
        with torch.no_grad():
            conv.weight.copy_(weight)
            if self.bias is not None:
                conv.bias.copy_(self.bias[out_idx])
        conv.train(self.training)
        return conv if pad is None else nn.Sequential(pad, conv).train(self.training)


class PITConv1d(PITConvNd, nn.Conv1d):
    """A searchable `nn.Conv1d`: output channels (alpha), receptive field (beta) and dilation (gamma).

    Kernel taps are kept from the causal end (the last kernel element): a receptive field of `R` taps keeps the
    last `R` kernel elements, a dilation of `2^j` keeps the taps at distances `0, 2^j, 2·2^j, ...` from that end.
    Export removes the dropped taps, multiplies the dilation and shifts the left padding (cropping when negative)
    so that the output is unchanged. With a padding mode other than zeros only channels are searched.
    """

    plain_type = nn.Conv1d

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.beta_masker = BetaMasker(self.kernel_size[0]).to(self.device())
        self.gamma_masker = GammaMasker(self.kernel_size[0]).to(self.device())
        if self.padding_mode != "zeros":
            self.beta_masker.freeze()
            self.gamma_masker.freeze()

    def tap_mask(self) -> Tensor:
        """Receptive-field mask times dilation mask, one value per tap (distance from the causal end)."""
        return self.beta_masker.mask() * self.gamma_masker.mask()

    def kernel_mask(self) -> Tensor:
        """The tap mask in kernel order (tap `t` is kernel element `K - 1 - t`)."""
        return self.tap_mask().flip(0)

    def _pads(self) -> tuple[int, int]:
        """Left and right zero padding of the full layer."""
        if isinstance(self.padding, str):
            total = 0 if self.padding == "valid" else self.dilation[0] * (self.kernel_size[0] - 1)
            return total // 2, total - total // 2
        return self.padding[0], self.padding[0]

    def export_taps(self, weight: Tensor) -> tuple[nn.Module | None, Tensor, dict[str, Any]]:
        """Keep the alive taps, as a shorter kernel with a larger dilation and a shifted left padding."""
        taps = alive(self.tap_mask()).tolist()
        size = self.kernel_size[0]
        if len(taps) == size:
            return super().export_taps(weight)
        step = taps[1] - taps[0] if len(taps) > 1 else 1
        dilation = self.dilation[0]
        left, right = self._pads()
        left -= (size - 1 - (len(taps) - 1) * step) * dilation
        kept = weight[..., [size - 1 - t for t in reversed(taps)]]
        geometry = {"dilation": dilation * step}
        if left == right:
            return None, kept, {**geometry, "padding": left}
        return nn.ConstantPad1d((left, right), 0.0), kept, {**geometry, "padding": 0}


class PITConv2d(PITConvNd, nn.Conv2d):
    """A searchable `nn.Conv2d`: output channels (alpha), and its kernel size when given a `kernel_masker`.

    PIT itself searches channels only. A `kernel_masker` (FBNetV2's kernel choice) gives a `K × K` mask whose
    alive taps form a centred `k × k` square; export keeps that square and shrinks the padding by
    `(K - k) / 2 · dilation`, so a "same" convolution stays "same" (`kernel_choices_allowed`).
    """

    plain_type = nn.Conv2d

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kernel_masker: BaseMasker | None = None

    def kernel_choices_allowed(self) -> bool:
        """Whether a centred smaller kernel computes the same windows: square odd kernel, "same" zero padding."""
        size, pads = self.kernel_size, self.padding
        same = pads == "same" or pads == tuple(d * (k // 2) for d, k in zip(self.dilation, size, strict=True))
        return size[0] == size[1] and size[0] % 2 == 1 and same and self.padding_mode == "zeros"

    def kernel_mask(self) -> Tensor | None:
        """The kernel masker's `K × K` mask, or None."""
        return None if self.kernel_masker is None else self.kernel_masker.mask()

    def export_taps(self, weight: Tensor) -> tuple[nn.Module | None, Tensor, dict[str, Any]]:
        """Keep the alive centred square of taps, with the padding shrunk to match."""
        taps = self.kernel_mask()
        if taps is None:
            return super().export_taps(weight)
        alive_taps = taps.detach() > 0.5
        size, kept = self.kernel_size[0], int(alive_taps.any(0).sum())
        cut = (size - kept) // 2
        if int(alive_taps.sum()) != kept * kept or not alive_taps[cut : cut + kept, cut : cut + kept].all():
            raise UsageError(f"the kernel mask of {type(self).__name__} keeps no centred square of taps")
        if kept == size:
            return super().export_taps(weight)
        pads, dilation = self.padding, self.dilation
        padding = pads if isinstance(pads, str) else tuple(p - cut * d for p, d in zip(pads, dilation, strict=True))
        return None, weight[..., cut : cut + kept, cut : cut + kept], {"padding": padding, "dilation": dilation}


class PITLinear(PITLayer, nn.Linear):
    """A searchable `nn.Linear`: output features (alpha)."""

    plain_type = nn.Linear

    @staticmethod
    def hparams(module: nn.Module) -> dict[str, Any]:
        """Constructor arguments of a plain linear layer."""
        return {"in_features": module.in_features, "out_features": module.out_features, "bias": module.bias is not None}

    @classmethod
    def convertible(cls, module: nn.Module) -> bool:
        """Every linear layer."""
        return True

    def n_in(self) -> int:
        """Input features."""
        return self.in_features

    def n_out(self) -> int:
        """Output features."""
        return self.out_features

    def compute(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """Affine map with the given weights."""
        return F.linear(x, weight, bias)

    def export_module(self) -> nn.Module:
        """The plain linear layer with pruned input and output features."""
        out_idx, in_idx = alive(self.out_mask()), self.alive_inputs()
        linear = nn.Linear(
            len(in_idx), len(out_idx), self.bias is not None, device=self.weight.device, dtype=self.weight.dtype
        )
        with torch.no_grad():
            linear.weight.copy_(self.weight[out_idx][:, in_idx])
            if self.bias is not None:
                linear.bias.copy_(self.bias[out_idx])
        return linear.train(self.training)


class PITBatchNorm(PITModule):
    """A batch norm whose output channels are zeroed where its input's channels are masked (export drops them)."""

    @staticmethod
    def hparams(module: nn.Module) -> dict[str, Any]:
        """Constructor arguments of a plain batch norm."""
        names = ("num_features", "eps", "momentum", "affine", "track_running_stats")
        return {n: getattr(module, n) for n in names}

    @classmethod
    def convertible(cls, module: nn.Module) -> bool:
        """Every batch norm."""
        return True

    def n_in(self) -> int:
        """Channels."""
        return self.num_features

    def n_out(self) -> int:
        """Channels."""
        return self.num_features

    @property
    def propagates(self) -> bool:
        """A batch norm keeps its input's channels."""
        return True

    def forward(self, x: Tensor) -> Tensor:
        """Batch norm, then the channel mask (so masked channels stay exactly zero)."""
        return super().forward(x) * self.out_mask().view(1, -1, *[1] * (x.dim() - 2))

    def export_module(self) -> nn.Module:
        """The plain batch norm over the alive channels."""
        idx = alive(self.out_mask())
        norm = self.plain_type(len(idx), **{k: v for k, v in self.hparams(self).items() if k != "num_features"})
        state = {k: v[idx] if v.dim() == 1 else v for k, v in self.state_dict().items() if "masker" not in k}
        norm.load_state_dict(state)
        return norm.to(self.device()).train(self.training)


class PITBatchNorm1d(PITBatchNorm, nn.BatchNorm1d):
    """`nn.BatchNorm1d` following the channel mask of its input."""

    plain_type = nn.BatchNorm1d


class PITBatchNorm2d(PITBatchNorm, nn.BatchNorm2d):
    """`nn.BatchNorm2d` following the channel mask of its input."""

    plain_type = nn.BatchNorm2d


PIT_LAYERS = Registry[PITModule]("PIT layer kind")
"""The searchable versions of plain layers; metadata: `plain` (the plain type), `searched` (what it searches) and
`example` (a plain instance and an input shape without batch, for the contract test)."""

PIT_LAYERS.register(
    "conv1d",
    plain=PITConv1d.plain_type,
    searched=("channels", "receptive field", "dilation"),
    example=lambda: (nn.Conv1d(3, 6, 5, padding=2), (3, 16)),
)(PITConv1d)
PIT_LAYERS.register(
    "conv2d",
    plain=PITConv2d.plain_type,
    searched=("channels",),
    example=lambda: (nn.Conv2d(3, 6, 3, padding=1), (3, 6, 6)),
)(PITConv2d)
PIT_LAYERS.register(
    "linear", plain=PITLinear.plain_type, searched=("features",), example=lambda: (nn.Linear(10, 6), (10,))
)(PITLinear)
PIT_LAYERS.register(
    "batchnorm1d",
    plain=PITBatchNorm1d.plain_type,
    searched=(),
    example=lambda: (nn.BatchNorm1d(6), (6, 16)),
)(PITBatchNorm1d)
PIT_LAYERS.register(
    "batchnorm2d",
    plain=PITBatchNorm2d.plain_type,
    searched=(),
    example=lambda: (nn.BatchNorm2d(6), (6, 4, 4)),
)(PITBatchNorm2d)


def pit_layer_for(module: nn.Module) -> type[PITModule] | None:
    """The searchable class whose plain type is exactly `module`'s type, or None."""
    return next((e.factory for e in PIT_LAYERS.entries() if type(module) is e.meta["plain"]), None)
