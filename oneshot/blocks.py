"""Candidate blocks of the one-shot spaces, registered by name: each a factory `(c_in, c_out, stride) -> nn.Module`.

- `mb_k{3,5,7}_e{3,6}`: ProxylessNAS MBConv (1x1 expand, ReLU6, depthwise kxk with the stride, ReLU6, 1x1 project,
  BN; a residual add when the stride is 1 and `c_in == c_out`). `mb_k3_e1` is ProxylessNAS's fixed first block
  (MBConv1: no expansion convolution).
- `fb_k{3,5}_e{1,3,6}` and `fb_k{3,5}_e1_g2`: FBNet's inverted residuals with ReLU; `e1` keeps its 1x1 expansion
  convolution (expansion 1, as in the FBNet paper), `_g2` uses group-2 1x1 convolutions and a channel shuffle after
  the first one.
- `shuffle_k{3,5,7}`, `shuffle_xception`: SPOS ShuffleNetV2 choice blocks (`ShuffleBlock`).
- `sp_k{3,5}_e{3,6}`: the candidates of Single-path NAS's superkernel (`SuperKernelMBConv`); built alone they are the
  plain ReLU6 MBConv that the superkernel's slice is extracted to.
- `skip`: identity when the stride is 1 and `c_in == c_out`, else a 1x1 convolution and BN with the stride (FBNet's
  Identity). ProxylessNAS and Single-path NAS offer it in every layer that is not the first of its stage (there the
  shape never changes, so it is always the identity); FBNet in all 22 layers (a 1x1 convolution in the first layer of
  a stage that changes the shape); SPOS never.

Every convolution is bias-free and followed by batch norm. Channel counts that a block cannot take (odd counts
where it halves or groups by 2, a stride-1 shuffle block that changes the width) are a `UsageError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from utils.errors import UsageError
from utils.registry import Registry

BLOCKS: Registry[nn.Module] = Registry("one-shot block")
"""Candidate block factories `(c_in, c_out, stride) -> nn.Module` with `family`, `kernel`, `expansion` metadata."""

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "relu6": nn.ReLU6}
"""The activations a block or a space may name."""


def create_block(name: str, c_in: int, c_out: int, stride: int) -> nn.Module:
    """A freshly initialised candidate block `name`; an unknown name is a `UsageError` listing the blocks."""
    if stride not in (1, 2):
        raise UsageError(f"block {name!r}: stride must be 1 or 2, got {stride}")
    if c_in < 1 or c_out < 1:
        raise UsageError(f"block {name!r}: channel counts must be positive, got {c_in} -> {c_out}")
    return BLOCKS.get(name)(c_in, c_out, stride)


def list_blocks() -> list[str]:
    """Names of every registered candidate block."""
    return BLOCKS.names(aliases=False)


def activation(name: str) -> nn.Module:
    """A fresh activation module by name (`relu`, `relu6`)."""
    try:
        return ACTIVATIONS[name](inplace=False)
    except KeyError:
        raise UsageError(f"unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}") from None


def conv_bn(
    c_in: int, c_out: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: str | None = None
) -> nn.Sequential:
    """A bias-free `kernel x kernel` convolution (padding `kernel // 2`), batch norm and optionally an activation."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if act is not None:
        layers.append(activation(act))
    return nn.Sequential(*layers)


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """ShuffleNet's channel shuffle: interleave the channels of `groups` equal groups."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class ChannelShuffle(nn.Module):
    """`channel_shuffle` as a module."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        """The shuffled channels."""
        return channel_shuffle(x, self.groups)


def _need_even(name: str, **counts: int) -> None:
    odd = {k: v for k, v in counts.items() if v % 2}
    if odd:
        raise UsageError(f"{name} needs even channel counts, got {', '.join(f'{k}={v}' for k, v in odd.items())}")


class MBConv(nn.Module):
    """Inverted residual: [1x1 expand, act], depthwise kxk with the stride, act, 1x1 project, BN; residual if it fits.

    `expand_conv=False` with expansion 1 drops the expansion convolution (ProxylessNAS's MBConv1); `groups=2` makes
    both 1x1 convolutions group-2 with a channel shuffle after the first (FBNet's `_g2`).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int,
        kernel: int,
        expansion: int,
        act: str = "relu6",
        groups: int = 1,
        expand_conv: bool = True,
    ) -> None:
        super().__init__()
        hidden = c_in * expansion
        if groups > 1:
            _need_even("a group-2 MBConv", c_in=c_in, c_out=c_out)
        self.c_in, self.c_out, self.stride, self.kernel, self.expansion = c_in, c_out, stride, kernel, expansion
        self.residual = stride == 1 and c_in == c_out
        if expansion == 1 and not expand_conv:
            self.expand: nn.Module = nn.Identity()
        else:
            expand = conv_bn(c_in, hidden, 1, groups=groups, act=act)
            if groups > 1:
                expand.append(ChannelShuffle(groups))
            self.expand = expand
        self.depthwise = conv_bn(hidden, hidden, kernel, stride, groups=hidden, act=act)
        self.project = conv_bn(hidden, c_out, 1, groups=groups)

    def forward(self, x: Tensor) -> Tensor:
        """The block's output (plus `x` when residual)."""
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class ShuffleBlock(nn.Module):
    """SPOS ShuffleNetV2 choice block (kernel 3, 5, 7, or `xception`: three dw3x3-1x1 pairs on the main branch).

    Stride 1 and `c_in == c_out`: the channels split in halves, the second half goes through the main branch
    (1x1, dw kxk, 1x1) and is concatenated after the first. Otherwise (stride 2, or a widening stride-1 layer at
    CIFAR scale): both branches see the whole input, the projection branch (dw kxk with the stride, 1x1) gives
    `c_in` channels and the main branch `c_out - c_in`. The concatenation is channel-shuffled (2 groups). The main
    branch's middle width is `c_out // 2`.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, kernel: int = 3, xception: bool = False) -> None:
        super().__init__()
        label = f"shuffle block {c_in} -> {c_out} (stride {stride})"
        _need_even(label, c_in=c_in, c_out=c_out)
        self.split = stride == 1 and c_in == c_out
        if not self.split and c_out <= c_in:
            raise UsageError(f"{label}: a shuffle block that does not split its input must widen it")
        self.stride, self.kernel, self.xception = stride, 3 if xception else kernel, xception
        branch_in = c_in // 2 if self.split else c_in
        outputs = c_out - c_in // 2 if self.split else c_out - c_in
        mid = c_out // 2
        k = self.kernel
        if xception:
            self.main = nn.Sequential(
                conv_bn(branch_in, branch_in, 3, stride, groups=branch_in),
                conv_bn(branch_in, mid, 1, act="relu"),
                conv_bn(mid, mid, 3, groups=mid),
                conv_bn(mid, mid, 1, act="relu"),
                conv_bn(mid, mid, 3, groups=mid),
                conv_bn(mid, outputs, 1, act="relu"),
            )
        else:
            self.main = nn.Sequential(
                conv_bn(branch_in, mid, 1, act="relu"),
                conv_bn(mid, mid, k, stride, groups=mid),
                conv_bn(mid, outputs, 1, act="relu"),
            )
        self.proj: nn.Module | None = None
        if not self.split:
            self.proj = nn.Sequential(
                conv_bn(c_in, c_in, k, stride, groups=c_in),
                conv_bn(c_in, c_in, 1, act="relu"),
            )

    def forward(self, x: Tensor) -> Tensor:
        """Both branches concatenated, then shuffled."""
        if self.proj is None:
            half = x.shape[1] // 2
            y = torch.cat((x[:, :half], self.main(x[:, half:])), 1)
        else:
            y = torch.cat((self.proj(x), self.main(x)), 1)
        return channel_shuffle(y, 2)


def skip_block(c_in: int, c_out: int, stride: int) -> nn.Module:
    """Identity when the shape is kept, else a 1x1 convolution and BN with the stride (FBNet's Identity)."""
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return conv_bn(c_in, c_out, 1, stride)


def _register_mbconv(
    name: str, kernel: int, expansion: int, act: str, groups: int = 1, expand_conv: bool = True, **meta: object
) -> None:
    def factory(c_in: int, c_out: int, stride: int) -> nn.Module:
        return MBConv(c_in, c_out, stride, kernel, expansion, act, groups, expand_conv)

    factory.__name__ = name
    BLOCKS.register(name, kernel=kernel, expansion=expansion, **meta)(factory)


for _k in (3, 5, 7):
    for _e in (3, 6):
        _register_mbconv(
            f"mb_k{_k}_e{_e}", _k, _e, "relu6", family="proxyless", help=f"ProxylessNAS MBConv{_e} {_k}x{_k}"
        )
_register_mbconv(
    "mb_k3_e1", 3, 1, "relu6", expand_conv=False, family="proxyless", help="ProxylessNAS MBConv1 3x3 (no expansion)"
)
for _k in (3, 5):
    for _e in (1, 3, 6):
        _register_mbconv(f"fb_k{_k}_e{_e}", _k, _e, "relu", family="fbnet", help=f"FBNet k{_k} e{_e}")
    _register_mbconv(f"fb_k{_k}_e1_g2", _k, 1, "relu", groups=2, family="fbnet", help=f"FBNet k{_k} e1 group-2")

SUPERKERNEL_CANDIDATES: dict[str, tuple[int, int]] = {f"sp_k{k}_e{e}": (k, e) for k in (3, 5) for e in (3, 6)}
"""Single-path NAS candidate name -> (kernel, expansion) of the superkernel slice."""

for _name, (_k, _e) in SUPERKERNEL_CANDIDATES.items():
    _register_mbconv(
        _name, _k, _e, "relu6", family="singlepath", superkernel=True, help=f"Single-path superkernel slice k{_k} e{_e}"
    )

BLOCKS.register("skip", family="all", help="identity, or a 1x1 conv + BN where the shape changes")(skip_block)


def _register_shuffle(name: str, kernel: int, xception: bool) -> None:
    def factory(c_in: int, c_out: int, stride: int) -> nn.Module:
        return ShuffleBlock(c_in, c_out, stride, kernel, xception)

    factory.__name__ = name
    label = "xception (3 x dw3x3-1x1)" if xception else f"{kernel}x{kernel}"
    BLOCKS.register(name, kernel=kernel, family="spos", help=f"SPOS ShuffleNetV2 choice block {label}")(factory)


for _k in (3, 5, 7):
    _register_shuffle(f"shuffle_k{_k}", _k, False)
_register_shuffle("shuffle_xception", 3, True)


def is_superkernel(name: str) -> bool:
    """Whether `name` is a Single-path superkernel candidate (`sp_k*_e*`)."""
    return name in SUPERKERNEL_CANDIDATES


class SuperKernelMBConv(nn.Module):
    """Single-path NAS superkernel: ONE MBConv at the largest kernel and expansion whose slices are the candidates.

    Candidate `(k, e)` uses the first `e * c_in` expanded channels and the centre `k x k` taps of the depthwise
    kernel (ReLU6, residual when the stride is 1 and `c_in == c_out`). Batch norms use the slice of their
    statistics and affine parameters.
    """

    def __init__(
        self, c_in: int, c_out: int, stride: int, kernels: Sequence[int] = (3, 5), expansions: Sequence[int] = (3, 6)
    ) -> None:
        super().__init__()
        self.kernels, self.expansions = tuple(sorted(kernels)), tuple(sorted(expansions))
        if any(k % 2 == 0 for k in self.kernels) or min(self.expansions) < 1:
            raise UsageError(f"superkernel needs odd kernels and expansions >= 1, got {kernels}, {expansions}")
        self.c_in, self.c_out, self.stride = c_in, c_out, stride
        self.residual = stride == 1 and c_in == c_out
        self.max_kernel, hidden = self.kernels[-1], c_in * self.expansions[-1]
        self.expand = conv_bn(c_in, hidden, 1, act="relu6")
        self.depthwise = conv_bn(hidden, hidden, self.max_kernel, stride, groups=hidden, act="relu6")
        self.project = conv_bn(hidden, c_out, 1)

    def check(self, kernel: int, expansion: int) -> None:
        """`UsageError` unless `(kernel, expansion)` is a candidate of this superkernel."""
        if kernel not in self.kernels or expansion not in self.expansions:
            raise UsageError(
                f"superkernel candidate k{kernel} e{expansion} is not one of kernels {self.kernels} x "
                f"expansions {self.expansions}"
            )

    def _taps(self, kernel: int) -> slice:
        trim = (self.max_kernel - kernel) // 2
        return slice(trim, trim + kernel)

    def sliced_weights(self, kernel: int, expansion: int) -> dict[str, Tensor]:
        """The candidate's convolution weights (views): `expand`, `depthwise`, `project`."""
        self.check(kernel, expansion)
        h, taps = self.c_in * expansion, self._taps(kernel)
        return {
            "expand": self.expand[0].weight[:h],
            "depthwise": self.depthwise[0].weight[:h, :, taps, taps],
            "project": self.project[0].weight[:, :h],
        }

    @staticmethod
    def _bn(bn: nn.BatchNorm2d, x: Tensor, n: int) -> Tensor:
        """`bn` restricted to its first `n` channels, as `nn.BatchNorm2d.forward` computes it (statistics updated)."""
        factor = 0.0 if bn.momentum is None else bn.momentum
        if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
            bn.num_batches_tracked.add_(1)
            factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
        use_batch = bn.training or (bn.running_mean is None and bn.running_var is None)
        keep = not bn.training or bn.track_running_stats
        return F.batch_norm(
            x,
            bn.running_mean[:n] if keep and bn.running_mean is not None else None,
            bn.running_var[:n] if keep and bn.running_var is not None else None,
            bn.weight[:n],
            bn.bias[:n],
            use_batch,
            factor,
            bn.eps,
        )

    def forward(self, x: Tensor, kernel: int | None = None, expansion: int | None = None) -> Tensor:
        """The output of candidate `(kernel, expansion)` (default the largest)."""
        kernel = self.max_kernel if kernel is None else kernel
        expansion = self.expansions[-1] if expansion is None else expansion
        w = self.sliced_weights(kernel, expansion)
        h = self.c_in * expansion
        y = F.relu6(self._bn(self.expand[1], F.conv2d(x, w["expand"]), h))
        y = F.conv2d(y, w["depthwise"], None, self.stride, kernel // 2, 1, h)
        y = F.relu6(self._bn(self.depthwise[1], y, h))
        y = self._bn(self.project[1], F.conv2d(y, w["project"]), self.c_out)
        return x + y if self.residual else y

    def standalone(self, kernel: int, expansion: int) -> MBConv:
        """A plain ReLU6 `MBConv` of candidate `(kernel, expansion)` with the sliced weights and statistics copied."""
        w = self.sliced_weights(kernel, expansion)
        h = self.c_in * expansion
        block = MBConv(self.c_in, self.c_out, self.stride, kernel, expansion, "relu6")
        pairs = (
            (block.expand, self.expand, h),
            (block.depthwise, self.depthwise, h),
            (block.project, self.project, None),
        )
        with torch.no_grad():
            for (mine, theirs, n), key in zip(pairs, ("expand", "depthwise", "project"), strict=True):
                mine[0].weight.copy_(w[key])
                _copy_bn(mine[1], theirs[1], n)
        device = self.expand[0].weight.device
        return block.to(device).train(self.training)


def _copy_bn(target: nn.BatchNorm2d, source: nn.BatchNorm2d, n: int | None) -> None:
    """Copy the first `n` channels (all when None) of `source`'s parameters and statistics into `target`."""
    for name in ("weight", "bias", "running_mean", "running_var"):
        value = getattr(source, name)
        getattr(target, name).copy_(value if n is None else value[:n])
    if source.num_batches_tracked is not None and target.num_batches_tracked is not None:
        target.num_batches_tracked.copy_(source.num_batches_tracked)


BlockFactory = Callable[[int, int, int], nn.Module]
"""The signature of a registered block factory."""
