"""Architecture definitions of a searchable chain: per layer its kind, maximum width, width and kernel choices.

`lenet_arch_def` is the default search space; `ofa_arch_def` turns an OFA MobileNetV3 subnet into one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from torch import nn

from search_space.base import Arch
from supernets.ofa_mbv3 import SupernetConfig, build_supernet, extract_subnet
from utils.errors import UsageError

DEFAULT_FRACTIONS = (0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class LayerDef:
    """One layer of the chain: conv (conv-BN-ReLU), dwconv (its width follows its input) or linear.

    `channels` is the maximum width (ignored by `dwconv`); the searched widths are `fractions` of it (at least one
    channel each) and the searched kernels are `kernels` (odd; the weights live at the largest). After the layer
    come an optional `pool × pool` max pooling and an optional global average pooling.
    """

    kind: str
    channels: int = 0
    fractions: tuple[float, ...] = (1.0,)
    kernels: tuple[int, ...] = (1,)
    stride: int = 1
    act: bool = True
    pool: int = 1
    avgpool: bool = False

    def __post_init__(self) -> None:
        if not self.fractions or any(not 0 < f <= 1 for f in self.fractions):
            raise UsageError(f"width fractions must lie in (0, 1], got {self.fractions}")
        if not self.kernels or any(k < 1 or k % 2 == 0 for k in self.kernels):
            raise UsageError(f"kernel choices must be odd and positive, got {self.kernels}")
        if self.kind == "linear" and self.kernels != (1,):
            raise UsageError("a linear layer has no kernel choices")

    def widths(self) -> list[int]:
        """The distinct searched output widths, ascending."""
        return sorted({max(1, round(f * self.channels)) for f in self.fractions})


@dataclass(frozen=True)
class ArchDef:
    """A searchable chain of layers on inputs of `input_shape` (channels, height, width)."""

    input_shape: tuple[int, int, int]
    layers: tuple[LayerDef, ...]

    def scaled(self, fraction: float) -> ArchDef:
        """The fixed network at one uniform width `fraction` and the largest kernels (the last layer kept whole)."""
        fixed = [replace(d, fractions=(fraction,), kernels=(max(d.kernels),)) for d in self.layers[:-1]]
        last = replace(self.layers[-1], fractions=(1.0,), kernels=(max(self.layers[-1].kernels),))
        return replace(self, layers=(*fixed, last))


def lenet_arch_def(
    n_classes: int = 10,
    input_shape: tuple[int, int, int] = (3, 8, 8),
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS,
) -> ArchDef:
    """LeNet-style default: two conv layers (kernels 3 or 5, 2x2 max pooling) and three linear layers."""
    return ArchDef(
        input_shape,
        (
            LayerDef("conv", 32, fractions, (3, 5), pool=2),
            LayerDef("conv", 64, fractions, (3, 5), pool=2),
            LayerDef("linear", 120, fractions),
            LayerDef("linear", 84, fractions),
            LayerDef("linear", n_classes, act=False),
        ),
    )


def module_arch_def(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS,
    dw_kernels: Sequence[int] | None = None,
    avgpool_after: str = "",
    skip: Sequence[str] = (),
) -> ArchDef:
    """The chain of `model`'s Conv2d / Linear layers in module order, their widths searched as `fractions`.

    Depthwise convolutions become `dwconv` layers (kernel choices `dw_kernels`, else their own kernel); a layer is
    followed by ReLU when its parent module has an `act` child; global average pooling follows the layer named
    `avgpool_after`; layers whose name contains a string of `skip` are left out. Residual additions,
    squeeze-excitation and the exact activations are not kept. The last linear layer (the classifier) keeps its
    width.
    """
    modules = dict(model.named_modules())
    layers = []
    for name, m in modules.items():
        if any(part in name for part in skip):
            continue
        parent = modules[name.rpartition(".")[0]]
        if isinstance(m, nn.Linear):
            layers.append(LayerDef("linear", m.out_features, fractions, act=False))
        elif isinstance(m, nn.Conv2d):
            depthwise = m.groups > 1 and m.groups == m.in_channels == m.out_channels
            own = (m.kernel_size[0],)
            layers.append(
                LayerDef(
                    "dwconv" if depthwise else "conv",
                    0 if depthwise else m.out_channels,
                    (1.0,) if depthwise else fractions,
                    tuple(sorted(dw_kernels)) if depthwise and dw_kernels else own,
                    m.stride[0],
                    hasattr(parent, "act"),
                    avgpool=name == avgpool_after,
                )
            )
    if not layers or layers[-1].kind != "linear":
        raise UsageError("the model must end with a linear classifier")
    return ArchDef(input_shape, (*layers[:-1], replace(layers[-1], fractions=(1.0,))))


def ofa_arch_def(
    arch: Arch,
    cfg: SupernetConfig | None = None,
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS,
    dw_kernels: Sequence[int] | None = (3, 5, 7),
) -> ArchDef:
    """The searchable chain of an OFA MobileNetV3 subnet (see `module_arch_def`), at the arch's resolution."""
    subnet = extract_subnet(build_supernet(cfg or SupernetConfig()), arch)
    return module_arch_def(
        subnet, (3, arch["r"], arch["r"]), fractions, dw_kernels, "final_expand_layer.conv", (".se.",)
    )
