"""What the search network and the final network share: the stem, the cell sequence and the classifier."""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

import torch
from torch import Tensor, nn

from dnas.darts.operations import REDUCTION_STRIDE, FactorizedReduce, Stride, relu_conv_bn
from utils.errors import UsageError


class CellFactory(Protocol):
    """Builds one cell; returns it with the number of `C`-channel states it concatenates."""

    def __call__(
        self, reduction: bool, reduction_prev: bool, c_prev_prev: int, c_prev: int, channels: int
    ) -> tuple[nn.Module, int]:
        """The cell and the number of states it concatenates."""


def reduction_layers(layers: int) -> tuple[int, ...]:
    """The default cells that reduce resolution and double channels: at one and two thirds of the depth."""
    return tuple(sorted({layers // 3, 2 * layers // 3}))


def check_reduction_cells(layers: int, reduction_cells: Collection[int] | None) -> tuple[int, ...]:
    """The sorted reduction cells (default `reduction_layers(layers)`); a `UsageError` unless each is a cell index."""
    if reduction_cells is None:
        return reduction_layers(layers)
    cells = tuple(sorted(set(reduction_cells)))
    if any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < layers for i in cells):
        raise UsageError(f"reduction cells must be cell indices in 0..{layers - 1}, got {list(reduction_cells)}")
    return cells


def edge_stride(reduction: bool, input_index: int, space: str) -> Stride:
    """The stride of an edge: reducing in a reduction cell when it reads one of the cell's two inputs."""
    return REDUCTION_STRIDE[space] if reduction and input_index < 2 else (1, 1)


class CellInputs(nn.Module):
    """Brings the cell's two inputs to `C` channels at one resolution (factorized reduce after a reduction cell)."""

    def __init__(
        self, c_prev_prev: int, c_prev: int, channels: int, reduction_prev: bool, space: str, affine: bool
    ) -> None:
        super().__init__()
        self.pre0 = (
            FactorizedReduce(c_prev_prev, channels, REDUCTION_STRIDE[space], affine)
            if reduction_prev
            else relu_conv_bn(c_prev_prev, channels, affine=affine)
        )
        self.pre1 = relu_conv_bn(c_prev, channels, affine=affine)

    def forward(self, s0: Tensor, s1: Tensor) -> list[Tensor]:
        """The two preprocessed states."""
        return [self.pre0(s0), self.pre1(s1)]


class CellNetwork(nn.Module):
    """Optional input batch norm, a 3-tap stem, `layers` cells, global pooling, a classifier.

    The cells at the indices `reduction_cells` (default: one and two thirds of the depth) halve the resolution and
    double the channels.

    Cells are called as `cell(s0, s1, weights)` where `weights` is what `cell_weights(reduction)` gives (the
    architecture weights in the search network, `None` in the final one).
    """

    def __init__(
        self,
        C: int,  # noqa: N803  (the upstream name)
        num_classes: int,
        layers: int,
        in_channels: int,
        with_input_batchnorm: bool,
        stem_multiplier: int,
        space: str,
        make_cell: CellFactory,
        reduction_cells: Collection[int] | None = None,
        **base: object,
    ) -> None:
        super().__init__(**base)  # cooperative: a subclass's other base (the DNAS façade) takes `base`
        self.space = space
        self.reduction_cells = check_reduction_cells(layers, reduction_cells)
        c_curr = stem_multiplier * C
        kernel, padding = ((3, 1), (1, 0)) if space == "1d" else ((3, 3), (1, 1))
        self.stem = nn.Sequential(
            nn.BatchNorm2d(in_channels) if with_input_batchnorm else nn.Identity(),
            nn.Conv2d(in_channels, c_curr, kernel, padding=padding, bias=False),
            nn.BatchNorm2d(c_curr),
        )
        c_prev_prev, c_prev, c_curr = c_curr, c_curr, C
        self.cells = nn.ModuleList()
        self.reductions: list[bool] = []
        reduction_prev = False
        for i in range(layers):
            reduction = i in self.reduction_cells
            c_curr = c_curr * 2 if reduction else c_curr
            cell, states = make_cell(reduction, reduction_prev, c_prev_prev, c_prev, c_curr)
            self.cells.append(cell)
            self.reductions.append(reduction)
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, states * c_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def cell_weights(self, reduction: bool) -> Tensor | None:
        """What cells of this kind receive besides their inputs (nothing in a fixed network)."""
        return None

    def forward(self, x: Tensor) -> Tensor:
        """Class logits of a `(B, in_channels, H, W)` batch (`W = 1` in 1-D)."""
        s0 = s1 = self.stem(x)
        weights = {r: self.cell_weights(r) for r in (False, True)}
        for cell, reduction in zip(self.cells, self.reductions, strict=True):
            s0, s1 = s1, cell(s0, s1, weights[reduction])
        return self.classifier(torch.flatten(self.global_pooling(s1), 1))
