"""The one-shot supernet: every candidate of every layer, run one path at a time or as a weighted mixture.

`OneShotSupernet(spec, n_classes)` holds a stem, one `ChoiceLayer` per searchable layer, a head and a classifier,
plus one architecture vector `alpha` per layer (zeros). `forward(x, path)` runs a single path (uniform or
strict-fairness training, evaluation); `mode="softmax"` weighs every candidate's output by `softmax(alpha)`
(DARTS-style); `mode="gumbel"` by Gumbel-softmax weights (FBNet; `hard=True` runs only the drawn candidate, with a
straight-through gradient). `extract(path)` gives a standalone network with the path's weights copied.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from oneshot.blocks import SUPERKERNEL_CANDIDATES, SuperKernelMBConv, conv_bn, create_block, is_superkernel
from oneshot.spaces import LayerSpec, OneShotSpec
from utils.errors import UsageError

FORWARD_MODES = ("path", "softmax", "gumbel")
"""`path`: one candidate per layer; `softmax`: softmax(alpha)-weighted sum; `gumbel`: Gumbel-softmax weights."""


def build_stem(spec: OneShotSpec) -> nn.Sequential:
    """The stem (3x3 conv, BN, activation, the optional max-pool) followed by the fixed blocks, freshly initialised."""
    stem = conv_bn(3, spec.stem_channels, 3, spec.stem_stride, act=spec.activation)
    if spec.stem_pool:
        stem.append(nn.MaxPool2d(3, 2, 1))
    for block in spec.fixed:
        stem.append(create_block(block.candidates[0], block.c_in, block.c_out, block.stride))
    return stem


def build_tail(spec: OneShotSpec, n_classes: int) -> nn.Sequential:
    """The head (1x1 conv, BN, activation; none when `head_channels` is 0), global pooling, flatten, classifier."""
    if n_classes < 1:
        raise UsageError(f"n_classes must be >= 1, got {n_classes}")
    c_last = spec.layers[-1].c_out if spec.layers else spec.stem_out
    head: nn.Module = nn.Identity()
    if spec.head_channels:
        head = conv_bn(c_last, spec.head_channels, 1, act=spec.activation)
    return nn.Sequential(head, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(spec.features, n_classes))


class OneShotNet(nn.Module):
    """A standalone network of one path: `stem`, `blocks` (one module per searchable layer), `tail`."""

    def __init__(self, stem: nn.Module, blocks: Sequence[nn.Module], tail: nn.Module) -> None:
        super().__init__()
        self.stem = stem
        self.blocks = nn.Sequential(*blocks)
        self.tail = tail

    def forward(self, x: Tensor) -> Tensor:
        """Class logits."""
        return self.tail(self.blocks(self.stem(x)))


class ChoiceLayer(nn.Module):
    """One searchable layer: its candidate blocks (`ops`, by name) and, for `sp_*` candidates, one superkernel."""

    def __init__(self, layer: LayerSpec) -> None:
        super().__init__()
        self.spec = layer
        self.candidates = layer.candidates
        sp = [SUPERKERNEL_CANDIDATES[n] for n in layer.candidates if is_superkernel(n)]
        self.superkernel: SuperKernelMBConv | None = None
        if sp:
            kernels, expansions = sorted({k for k, _ in sp}), sorted({e for _, e in sp})
            self.superkernel = SuperKernelMBConv(layer.c_in, layer.c_out, layer.stride, kernels, expansions)
        self.ops = nn.ModuleDict(
            {
                n: create_block(n, layer.c_in, layer.c_out, layer.stride)
                for n in layer.candidates
                if not is_superkernel(n)
            }
        )

    def run(self, x: Tensor, index: int) -> Tensor:
        """The output of candidate `index`."""
        name = self.candidates[index]
        if is_superkernel(name):
            assert self.superkernel is not None
            return self.superkernel(x, *SUPERKERNEL_CANDIDATES[name])
        return self.ops[name](x)

    def standalone(self, index: int) -> nn.Module:
        """A deep copy of candidate `index` (a plain `MBConv` for a superkernel candidate)."""
        name = self.candidates[index]
        if is_superkernel(name):
            assert self.superkernel is not None
            return self.superkernel.standalone(*SUPERKERNEL_CANDIDATES[name])
        return copy.deepcopy(self.ops[name])


def gumbel_noise(n: int, generator: torch.Generator | None = None) -> Tensor:
    """`n` standard Gumbel draws, on the CPU (float32) with `generator` (the global CPU stream when None)."""
    u = torch.rand(n, generator=generator, dtype=torch.float32)
    tiny = torch.finfo(torch.float32).tiny
    return -torch.log(-torch.log(u.clamp(tiny, 1.0 - 1e-7)))


class OneShotSupernet(nn.Module):
    """The weight-sharing supernet of a one-shot space: stem, one choice layer per `LayerSpec`, head, classifier.

    `alpha` holds one zero vector per searchable layer (its number of candidates long): the architecture parameters
    of the differentiable modes.
    """

    def __init__(self, spec: OneShotSpec, n_classes: int) -> None:
        super().__init__()
        self.spec = spec
        self.n_classes = n_classes
        self.stem = build_stem(spec)
        self.layers = nn.ModuleList(ChoiceLayer(layer) for layer in spec.layers)
        self.tail = build_tail(spec, n_classes)
        self.alpha = nn.ParameterList(nn.Parameter(torch.zeros(n)) for n in spec.n_choices)

    def forward(
        self,
        x: Tensor,
        path: Sequence[int] | None = None,
        *,
        mode: str = "path",
        tau: float = 1.0,
        hard: bool = False,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Class logits of `x` along `path` (`mode="path"`) or of the alpha-weighted mixture (`softmax`, `gumbel`)."""
        if mode not in FORWARD_MODES:
            raise UsageError(f"unknown forward mode {mode!r}; choose one of: {', '.join(FORWARD_MODES)}")
        if mode == "path":
            if path is None:
                raise UsageError("mode 'path' needs a path (one candidate index per layer)")
            indices = self.spec.validate_path(path)
            y = self.stem(x)
            for layer, index in zip(self.layers, indices, strict=True):
                y = layer.run(y, index)
            return self.tail(y)
        if path is not None:
            raise UsageError(f"mode {mode!r} takes no path (the weights come from alpha)")
        if mode == "gumbel" and not tau > 0:
            raise UsageError(f"the Gumbel-softmax temperature tau must be > 0, got {tau}")
        y = self.stem(x)
        for layer, alpha in zip(self.layers, self.alpha, strict=True):
            if mode == "softmax":
                weights = F.softmax(alpha, -1)
                y = sum(w * layer.run(y, i) for i, w in enumerate(weights))
                continue
            noise = gumbel_noise(alpha.numel(), generator).to(alpha.device, alpha.dtype)
            soft = F.softmax((alpha + noise) / tau, -1)
            if hard:
                index = int(soft.detach().argmax())
                one_hot = F.one_hot(torch.tensor(index, device=alpha.device), alpha.numel()).to(soft.dtype)
                weight = one_hot + (soft - soft.detach())  # value exactly one-hot, gradient the soft weights'
                y = layer.run(y, index) * weight[index]
            else:
                y = sum(w * layer.run(y, i) for i, w in enumerate(soft))
        return self.tail(y)

    def arch_parameters(self) -> list[nn.Parameter]:
        """The architecture parameters (`alpha`, one vector per layer)."""
        return list(self.alpha)

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter but the architecture parameters."""
        arch = {id(p) for p in self.alpha}
        return [p for p in self.parameters() if id(p) not in arch]

    def probabilities(self) -> list[Tensor]:
        """`softmax(alpha_l)` per layer (differentiable)."""
        return [F.softmax(a, -1) for a in self.alpha]

    def argmax_path(self) -> list[int]:
        """The most probable candidate of every layer."""
        return [int(a.detach().argmax()) for a in self.alpha]

    def extract(self, path: Sequence[int]) -> OneShotNet:
        """A standalone network of `path` with the weights copied (deep copies; superkernel slices as `MBConv`s).

        In the same mode, `extract(path)(x)` equals `self(x, path)`; the copy is in the supernet's train/eval mode.
        """
        indices = self.spec.validate_path(path)
        blocks = [layer.standalone(i) for layer, i in zip(self.layers, indices, strict=True)]
        net = OneShotNet(copy.deepcopy(self.stem), blocks, copy.deepcopy(self.tail))
        return net.train(self.training)

    def layer_input_shapes(self, resolution: int) -> list[tuple[int, int, int]]:
        """(C, H, W) entering each searchable layer for a `resolution` x `resolution` input."""
        return self.spec.layer_input_shapes(resolution)


def build_network(spec: OneShotSpec, path: Sequence[int], n_classes: int) -> OneShotNet:
    """The freshly initialised standalone network of `path` (the structure `OneShotSupernet.extract` gives)."""
    names = spec.names(path)
    blocks = [
        create_block(n, layer.c_in, layer.c_out, layer.stride) for n, layer in zip(names, spec.layers, strict=True)
    ]
    return OneShotNet(build_stem(spec), blocks, build_tail(spec, n_classes))
