"""Searchable layers: one weight tensor at the maximum width and kernel, masked by Gumbel-softmax mixtures.

A width choice `j` keeps the first `c_j` output channels (mask_j), a kernel choice `k` keeps the central `k × k`
taps of the largest kernel (the others zeroed). The layer's output is multiplied by the mixture `Σ_j w_j mask_j`
and its kernel by `Σ_k w_k mask_k`, with `w` a Gumbel-softmax sample in training and the one-hot arg-max in
evaluation, where the masked layer computes exactly the plain layer it exports.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dnas.fbnetv2.arch import LayerDef
from hw import LayerShape
from utils.errors import UsageError
from utils.registry import Registry

Size = tuple[int, ...]
Expected = tuple[LayerShape, Tensor, Tensor]  # (shape over the choices, their probabilities, expected out channels)


class Choice(nn.Module):
    """Logits over `n` options; a single option has a fixed (non-parameter) logit."""

    def __init__(self, n: int) -> None:
        super().__init__()
        if n > 1:
            self.logits = nn.Parameter(torch.zeros(n))
        else:
            self.register_buffer("logits", torch.zeros(1))

    def probs(self) -> Tensor:
        """Softmax of the logits: the probabilities of the expected cost."""
        return self.logits.softmax(0)

    def index(self) -> int:
        """The arg-max option; ties go to the last (widest, largest) one, so an untrained choice is the maximum."""
        return len(self.logits) - 1 - int(self.logits.detach().flip(0).argmax())

    def one_hot(self) -> Tensor:
        """The arg-max option as one-hot weights."""
        return F.one_hot(torch.tensor(self.index()), len(self.logits)).to(self.logits)

    def gumbel(self, temperature: float, hard: bool = False) -> Tensor:
        """A Gumbel-softmax sample at `temperature` (one-hot with soft gradients when `hard`); fixed: one-hot."""
        if isinstance(self.logits, nn.Parameter):
            return F.gumbel_softmax(self.logits, tau=temperature, hard=hard)
        return self.one_hot()

    def weights(self, temperature: float) -> Tensor:
        """A Gumbel-softmax sample at `temperature` in training, the one-hot arg-max in evaluation."""
        return self.gumbel(temperature) if self.training else self.one_hot()


def prefix_masks(widths: list[int], size: int) -> Tensor:
    """Row `j` keeps the first `widths[j]` of `size` entries."""
    return (torch.arange(size)[None] < torch.tensor(widths)[:, None]).float()


def center_masks(kernels: tuple[int, ...]) -> Tensor:
    """Row `j` keeps the central `kernels[j] × kernels[j]` taps of the largest kernel."""
    size = max(kernels)
    taps = (torch.arange(size) - size // 2).abs()
    return torch.stack([((taps[:, None] <= k // 2) & (taps[None] <= k // 2)).float() for k in kernels])


class SearchLayer(nn.Module, ABC):
    """A searchable layer of a chain: forward with masks, its expected shape, and export at chosen indices."""

    def __init__(self, spec: LayerDef, in_channels: int, in_size: Size, widths: list[int]) -> None:
        super().__init__()
        self.spec = spec
        self.in_channels = in_channels
        self.in_positions = math.prod(in_size)
        self.widths = widths
        self.channels = Choice(len(widths))
        self.kernels = Choice(len(spec.kernels))
        self.register_buffer("channel_masks", prefix_masks(widths, max(widths)))
        self.register_buffer("width_values", torch.tensor(widths, dtype=torch.float32))
        self.register_buffer("taps", torch.tensor([k * k for k in spec.kernels], dtype=torch.float32))

    @property
    @abstractmethod
    def out_size(self) -> Size:
        """Spatial size of the layer's output before pooling."""

    @property
    def out_positions(self) -> int:
        """Output positions per sample before pooling."""
        return math.prod(self.out_size)

    def next_size(self) -> Size:
        """Spatial size handed to the next layer (after pooling)."""
        return self.out_size

    @property
    def out_channels(self) -> int:
        """The maximum output width."""
        return max(self.widths)

    def out_mask(self, in_mask: Tensor, temperature: float) -> Tensor:
        """The output channel mixture `Σ_j w_j mask_j`."""
        return self.channels.weights(temperature) @ self.channel_masks

    def forward(self, x: Tensor, in_mask: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
        """`(output, output channel mask)` of masked inputs `x` whose channel mask is `in_mask`."""
        y = self.transform(x, temperature)
        mask = self.out_mask(in_mask, temperature)
        y = self.post(y) * mask.view(-1, *[1] * (y.dim() - 2))
        return self.pool(y), mask

    @abstractmethod
    def transform(self, x: Tensor, temperature: float) -> Tensor:
        """The layer's masked weights applied to `x` (with its normalisation)."""

    def post(self, y: Tensor) -> Tensor:
        """The activation."""
        return F.relu(y) if self.spec.act else y

    def pool(self, y: Tensor) -> Tensor:
        """Pooling after the masked output."""
        return y

    @abstractmethod
    def expected_shape(self, in_channels: Tensor) -> Expected:
        """The layer's soft shape over its choices, their softmax probabilities, and its expected output channels.

        The shape's counts broadcast to the probabilities' grid: the expected cost under any `hw` cost model is
        `(probabilities · cost(shape)).sum()`, given the expected input channels.
        """

    @abstractmethod
    def export(self, in_channels: int, width: int, kernel: int) -> tuple[list[nn.Module], int]:
        """Plain modules for `in_channels` inputs at choice indices `width`, `kernel`, and their output channels."""


LAYER_TYPES = Registry[SearchLayer]("FBNetV2 layer kind")
"""The kinds of `LayerDef`; metadata `searches`: what the kind's choices are (`width`, `kernel`)."""


class _ConvBase(SearchLayer):
    """conv (at the largest kernel) → BN → activation → channel mask → max / global average pooling."""

    groups_follow_input = False

    def __init__(self, spec: LayerDef, in_channels: int, in_size: Size, widths: list[int]) -> None:
        super().__init__(spec, in_channels, in_size, widths)
        size = max(spec.kernels)
        self._out_size = tuple((n + 2 * (size // 2) - size) // spec.stride + 1 for n in in_size)
        groups = in_channels if self.groups_follow_input else 1
        self.conv = nn.Conv2d(in_channels, self.out_channels, size, spec.stride, size // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(self.out_channels)
        self.register_buffer("kernel_masks", center_masks(spec.kernels))

    @property
    def out_size(self) -> Size:
        """The convolution's output size."""
        return self._out_size

    def next_size(self) -> Size:
        """After max pooling (floor) and global average pooling."""
        return (1, 1) if self.spec.avgpool else tuple(n // self.spec.pool for n in self.out_size)

    def transform(self, x: Tensor, temperature: float) -> Tensor:
        """Convolution with the kernel mixture, then batch norm."""
        kernel = torch.einsum("k,kij->ij", self.kernels.weights(temperature), self.kernel_masks)
        c = self.conv
        return self.bn(F.conv2d(x, c.weight * kernel, None, c.stride, c.padding, c.dilation, c.groups))

    def pool(self, y: Tensor) -> Tensor:
        """Max pooling, then global average pooling, when the spec asks for them."""
        if self.spec.pool > 1:
            y = F.max_pool2d(y, self.spec.pool)
        return y.mean((2, 3), keepdim=True) if self.spec.avgpool else y

    def export(self, in_channels: int, width: int, kernel: int) -> tuple[list[nn.Module], int]:
        """Conv2d, BatchNorm2d, activation and pooling with the kept channels and central taps."""
        out = in_channels if self.groups_follow_input else self.widths[width]
        k = self.spec.kernels[kernel]
        cut = (max(self.spec.kernels) - k) // 2
        groups = in_channels if self.groups_follow_input else 1
        conv = nn.Conv2d(in_channels, out, k, self.spec.stride, k // 2, groups=groups, bias=False)
        bn = nn.BatchNorm2d(out, self.bn.eps, self.bn.momentum)
        with torch.no_grad():
            conv.weight.copy_(self.conv.weight[:out, : in_channels // groups, cut : cut + k, cut : cut + k])
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(bn, name).copy_(getattr(self.bn, name)[:out])
            bn.num_batches_tracked.copy_(self.bn.num_batches_tracked)
        modules: list[nn.Module] = [conv, bn]
        modules += [nn.ReLU()] if self.spec.act else []
        modules += [nn.MaxPool2d(self.spec.pool)] if self.spec.pool > 1 else []
        modules += [nn.AdaptiveAvgPool2d(1)] if self.spec.avgpool else []
        return modules, out


@LAYER_TYPES.register("conv", searches=("width", "kernel"))
class SearchConv(_ConvBase):
    """A convolution searching its output width and kernel size."""

    def __init__(self, spec: LayerDef, in_channels: int, in_size: Size) -> None:
        if spec.channels < 1:
            raise UsageError(f"a conv layer needs channels >= 1, got {spec.channels}")
        super().__init__(spec, in_channels, in_size, spec.widths())

    def expected_shape(self, in_channels: Tensor) -> Expected:
        """Kernels × widths: probability `p_k q_j` of `c_j` outputs at `k²` taps from `E[c_in]` inputs."""
        shape = LayerShape(
            in_channels, self.width_values[None], self.taps[:, None], self.out_positions, self.in_positions
        )
        q = self.channels.probs()
        return shape, self.kernels.probs()[:, None] * q[None], q @ self.width_values


@LAYER_TYPES.register("dwconv", searches=("kernel",))
class SearchDepthwise(_ConvBase):
    """A depthwise convolution searching its kernel size; its channels follow its input's mask."""

    groups_follow_input = True

    def __init__(self, spec: LayerDef, in_channels: int, in_size: Size) -> None:
        super().__init__(spec, in_channels, in_size, [in_channels])

    def out_mask(self, in_mask: Tensor, temperature: float) -> Tensor:
        """The input's channel mask (masked channels stay zero after batch norm)."""
        return in_mask

    def expected_shape(self, in_channels: Tensor) -> Expected:
        """Kernels: `E[c_in]` groups of one channel at `k²` taps, with probability `p_k`."""
        shape = LayerShape(1, in_channels, self.taps, self.out_positions, self.in_positions, in_channels)
        return shape, self.kernels.probs(), in_channels


@LAYER_TYPES.register("linear", searches=("width",))
class SearchLinear(SearchLayer):
    """A linear layer (flattening a feature map first) searching its output width."""

    def __init__(self, spec: LayerDef, in_channels: int, in_size: Size) -> None:
        if spec.channels < 1:
            raise UsageError(f"a linear layer needs channels >= 1, got {spec.channels}")
        super().__init__(spec, in_channels, in_size, spec.widths())
        self.linear = nn.Linear(in_channels * self.in_positions, self.out_channels)

    @property
    def out_size(self) -> Size:
        """One position."""
        return (1, 1)

    def transform(self, x: Tensor, temperature: float) -> Tensor:
        """The flattened input through the full-width linear layer."""
        return self.linear(x.flatten(1))

    def expected_shape(self, in_channels: Tensor) -> Expected:
        """Widths: probability `q_j` of `c_j` outputs from the `E[c_in] · positions` flattened features."""
        shape = LayerShape(in_channels * self.in_positions, self.width_values, 1, 1, 1, bias=True)
        q = self.channels.probs()
        return shape, q, q @ self.width_values

    def export(self, in_channels: int, width: int, kernel: int) -> tuple[list[nn.Module], int]:
        """Flatten and a Linear on the kept input channels' features, with the kept outputs."""
        out = self.widths[width]
        linear = nn.Linear(in_channels * self.in_positions, out)
        with torch.no_grad():
            weight = self.linear.weight[:out].view(out, self.in_channels, self.in_positions)[:, :in_channels]
            linear.weight.copy_(weight.reshape(out, -1))
            linear.bias.copy_(self.linear.bias[:out])
        return [nn.Flatten(), linear, *([nn.ReLU()] if self.spec.act else [])], out
