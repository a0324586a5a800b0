"""A tiny second search space, written as the README's two-file recipe says (this file is the space, the test is
`test_tiny_space.py`): a two-stage CNN with a width and a kernel choice per stage, plus the input resolution.

Architectures are `{"w": [w0, w1], "k": [k0, k1], "r": r}`. The supernet holds the widest, largest-kernel weights;
a subnet takes the first `w` output channels and the centre `k × k` taps of each convolution.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import torch
from torch import nn

from hw.costs import conv_macs, conv_params
from hw.metrics import CostCounts, CostMetrics
from hw.systolic import DEFAULT_ARRAY, conv_runtime
from search_space import Arch, ChoiceSpace, InvalidArchitecture

WIDTHS = ((8, 16), (16, 32))
KERNELS = (3, 5)
STRIDE = 2


def out_size(size: int, kernel: int) -> int:
    """Output height/width of a stride-2 convolution with `kernel // 2` padding."""
    return (size + 2 * (kernel // 2) - kernel) // STRIDE + 1


class TinySupernet(nn.Module):
    """Two convolution stages at their widest and largest kernel, batch norm, ReLU, pooling and a classifier."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        channels = [3, *(max(w) for w in WIDTHS)]
        k = max(KERNELS)
        self.convs = nn.ModuleList(nn.Conv2d(a, b, k, STRIDE, k // 2, bias=False) for a, b in pairwise(channels))
        self.norms = nn.ModuleList(nn.BatchNorm2d(c) for c in channels[1:])
        self.classifier = nn.Linear(channels[-1], n_classes)


class TinyCosts:
    """Exact costs of tiny architectures, counted layer by layer with the `hw` formulas."""

    def __init__(self, n_classes: int, array: tuple[int, int]) -> None:
        self.n_classes = n_classes
        self.array = array

    def counts(self, arch: Arch) -> CostCounts:
        """Integer counts: params, MACs, CNAS activations, peak live elements and systolic cycles."""
        size, c_in = arch["r"], 3
        params = macs = acts = runtime = 0
        peak = 0
        for c_out, k in zip(arch["w"], arch["k"], strict=True):
            out = out_size(size, k)
            positions, x_in, x_out = out * out, c_in * size * size, c_out * out * out
            params += conv_params(c_in, c_out, k * k, bias=False) + 2 * c_out
            macs += conv_macs(c_in, c_out, k * k, positions)
            runtime += conv_runtime(c_in, c_out, k * k, positions, self.array)
            acts += 2 * x_out  # the convolution's and the batch norm's outputs
            peak = max(peak, x_in + x_out, 2 * x_out)  # conv; batch norm and ReLU (input and output alive)
            size, c_in = out, c_out
        params += conv_params(c_in, self.n_classes, 1)
        macs += conv_macs(c_in, self.n_classes, 1, 1)
        runtime += conv_runtime(c_in, self.n_classes, 1, 1, self.array)
        acts += c_in + self.n_classes  # flatten and classifier outputs
        peak = max(peak, c_in * size * size + c_in, 2 * c_in, c_in + self.n_classes)  # pool, flatten, classifier
        return CostCounts(params, macs, acts, peak, runtime)

    def __call__(self, arch: Arch) -> CostMetrics:
        """The costs of `arch` in millions."""
        return self.counts(arch).to_metrics()


class TinySpace(ChoiceSpace):
    """Genome `[w0, k0, w1, k1, r]` of choice indices; every genome is a distinct network (already canonical)."""

    name = "tiny"

    def __init__(self, lr: int = 16, ur: int = 24, rstep: int = 4) -> None:
        self.resolutions = tuple(range(lr, ur + 1, rstep))
        choices = [len(WIDTHS[0]), len(KERNELS), len(WIDTHS[1]), len(KERNELS), len(self.resolutions)]
        self.set_choices(choices)

    def gene_names(self) -> list[str]:
        """Width and kernel of each stage, then the resolution."""
        return ["stage 0 width", "stage 0 kernel", "stage 1 width", "stage 1 kernel", "resolution"]

    def decode(self, x: np.ndarray | list[int]) -> Arch:
        """The architecture of genome `x`."""
        g = self.check_genome(x)
        return {
            "w": [WIDTHS[0][g[0]], WIDTHS[1][g[2]]],
            "k": [KERNELS[g[1]], KERNELS[g[3]]],
            "r": self.resolutions[g[4]],
        }

    def encode(self, arch: Arch) -> np.ndarray:
        """The genome of `arch`."""
        arch = self.validate(arch)
        w, k = arch["w"], arch["k"]
        genes = [WIDTHS[0].index(w[0]), KERNELS.index(k[0]), WIDTHS[1].index(w[1]), KERNELS.index(k[1])]
        return np.array([*genes, self.resolutions.index(arch["r"])], dtype=np.int64)

    def validate(self, arch: Arch) -> Arch:
        """`arch` checked field by field."""
        if not isinstance(arch, dict) or set(arch) != {"w", "k", "r"}:
            raise InvalidArchitecture(f"a tiny architecture has the keys w, k, r; got {arch!r}")
        for s in range(2):
            if arch["w"][s] not in WIDTHS[s]:
                raise InvalidArchitecture(f"w[{s}] = {arch['w'][s]!r} is not one of {WIDTHS[s]}")
            if arch["k"][s] not in KERNELS:
                raise InvalidArchitecture(f"k[{s}] = {arch['k'][s]!r} is not one of {KERNELS}")
        if arch["r"] not in self.resolutions:
            raise InvalidArchitecture(f"r = {arch['r']!r} is not one of {self.resolutions}")
        return {"w": [int(v) for v in arch["w"]], "k": [int(v) for v in arch["k"]], "r": int(arch["r"])}

    def smallest(self) -> Arch:
        """Narrowest, smallest kernels, lowest resolution."""
        return {"w": [WIDTHS[0][0], WIDTHS[1][0]], "k": [KERNELS[0]] * 2, "r": self.resolutions[0]}

    def largest(self) -> Arch:
        """Widest, largest kernels, highest resolution."""
        return {"w": [WIDTHS[0][-1], WIDTHS[1][-1]], "k": [KERNELS[-1]] * 2, "r": self.resolutions[-1]}

    def unrestricted(self) -> TinySpace:
        """Every resolution from 8 to 64 px."""
        return TinySpace(lr=8, ur=64, rstep=1)

    def cost_function(
        self, n_classes: int, width_mult: float = 1.0, array: tuple[int, int] = DEFAULT_ARRAY
    ) -> TinyCosts:
        """Exact costs for `n_classes` classes (there is no width multiplier)."""
        return TinyCosts(n_classes, tuple(array))

    def build_supernet(self, n_classes: int, width_mult: float = 1.0) -> nn.Module:
        """The widest network, freshly initialised."""
        return TinySupernet(n_classes)

    def extract(self, supernet: nn.Module, arch: Arch) -> nn.Module:
        """A plain `nn.Sequential` of `arch` with the supernet's sliced weights."""
        layers: list[nn.Module] = []
        c_in = 3
        for conv, norm, c_out, k in zip(supernet.convs, supernet.norms, arch["w"], arch["k"], strict=True):
            small = nn.Conv2d(c_in, c_out, k, STRIDE, k // 2, bias=False)
            trim = (conv.kernel_size[0] - k) // 2
            small.weight.data.copy_(conv.weight.data[:c_out, :c_in, trim : trim + k, trim : trim + k])
            bn = nn.BatchNorm2d(c_out)
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(bn, name).data.copy_(getattr(norm, name).data[:c_out])
            layers += [small, bn, nn.ReLU()]
            c_in = c_out
        head = nn.Linear(c_in, supernet.classifier.out_features)
        head.weight.data.copy_(supernet.classifier.weight.data[:, :c_in])
        head.bias.data.copy_(supernet.classifier.bias.data)
        net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)
        return net.to(next(supernet.parameters()).device)


def live_peak(model: nn.Module, resolution: int) -> int:
    """Measured `peak_act`: the largest input-plus-output element count over the leaf modules of a forward pass."""
    peaks: list[int] = []
    hooks = [
        m.register_forward_hook(lambda _m, i, o: peaks.append(i[0].numel() + o.numel()))
        for m in model.modules()
        if next(m.children(), None) is None
    ]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, resolution, resolution))
    for hook in hooks:
        hook.remove()
    return max(peaks)
