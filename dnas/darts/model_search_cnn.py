"""The DARTS search network: cells of mixed operations weighted by softmaxed architecture parameters (alphas)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dnas.base import DNAS
from dnas.darts.costs import COST_KINDS, Cost, cost_tables, measure
from dnas.darts.genotypes import Genotype_CNN
from dnas.darts.model import NetworkCnn
from dnas.darts.network import CellInputs, CellNetwork, edge_stride
from dnas.darts.operations import Stride, check_primitives, create_operation, default_primitives
from hw import COST_MODELS, HardwareModel, combine
from utils.errors import UsageError


class MixedOp(nn.Module):
    """Every candidate operation of one edge; the output is their sum weighted by the edge's softmaxed alphas."""

    def __init__(self, channels: int, stride: Stride, primitives: list[str]) -> None:
        super().__init__()
        self.ops = nn.ModuleList(create_operation(name, channels, stride, affine=False) for name in primitives)

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:
        """`sum_o weights[o] * o(x)`."""
        return sum(w * op(x) for w, op in zip(weights, self.ops, strict=True))


class SearchCell(nn.Module):
    """A cell whose node `k` sums a mixed operation of every earlier state; the last `multiplier` nodes are output."""

    def __init__(self, nodes: int, multiplier: int, inputs: CellInputs, edges: list[MixedOp]) -> None:
        super().__init__()
        self.nodes = nodes
        self.multiplier = multiplier
        self.inputs = inputs
        self.edges = nn.ModuleList(edges)

    def forward(self, s0: Tensor, s1: Tensor, weights: Tensor) -> Tensor:
        """The concatenated output nodes; `weights` is `[edges, primitives]`."""
        states = self.inputs(s0, s1)
        offset = 0
        for _ in range(self.nodes):
            states.append(sum(self.edges[offset + j](h, weights[offset + j]) for j, h in enumerate(states)))
            offset += len(states) - 1
        return torch.cat(states[-self.multiplier :], dim=1)


def edge_inputs(nodes: int) -> list[int]:
    """The input state of every edge of a cell, in edge order (node 0: states 0, 1; node 1: 0, 1, 2; ...)."""
    return [j for k in range(nodes) for j in range(2 + k)]


class NetworkSearchCnn(CellNetwork, DNAS):
    """The supernet of a DARTS search.

    Architecture parameters (`alphas_normal`, `alphas_reduce`, `[edges, primitives]`, shared by all cells of a kind)
    are kept apart from the weights (`arch_parameters()` / `net_parameters()`). `input_shape` (channels, H, W;
    `W = 1` in 1-D) fixes the shapes at which every `hw` cost model is evaluated on each candidate (`costs.py`;
    `latency` on `hardware`); `regularizer` picks the one `get_regularization_loss()` returns. `reduction_cells`
    are the indices of the reducing cells (default: one and two thirds of the depth).
    """

    cost_kinds = COST_KINDS

    def __init__(
        self,
        C: int,  # noqa: N803  (the upstream name)
        num_classes: int,
        layers: int,
        input_shape: tuple[int, int, int],
        with_input_batchnorm: bool = False,
        nodes_per_layer: int = 4,
        multiplier: int = 4,
        stem_multiplier: int = 3,
        space: str = "2d",
        primitives: list[str] | None = None,
        regularizer: str = "params",
        generator: torch.Generator | None = None,
        hardware: str | HardwareModel | None = None,
        reduction_cells: Collection[int] | None = None,
    ) -> None:
        self.primitives = list(primitives or default_primitives(space))
        check_primitives(self.primitives, space)
        if not 1 <= multiplier <= nodes_per_layer:
            raise UsageError(f"multiplier must be in 1..nodes_per_layer={nodes_per_layer}, got {multiplier}")
        if len(self.primitives) < 2 or self.primitives == ["none"] * len(self.primitives):
            raise UsageError(f"a search needs at least two primitives, one of them not 'none': {self.primitives}")
        inputs = edge_inputs(nodes_per_layer)

        def make_cell(reduction: bool, reduction_prev: bool, c_pp: int, c_p: int, c_c: int) -> tuple[nn.Module, int]:
            edges = [MixedOp(c_c, edge_stride(reduction, j, space), self.primitives) for j in inputs]
            pre = CellInputs(c_pp, c_p, c_c, reduction_prev, space, affine=False)
            return SearchCell(nodes_per_layer, multiplier, pre, edges), multiplier

        super().__init__(
            C,
            num_classes,
            layers,
            input_shape[0],
            with_input_batchnorm,
            stem_multiplier,
            space,
            make_cell,
            reduction_cells,
            regularizer=regularizer,
            hardware=hardware,
        )
        self.config = {
            "C": C,
            "num_classes": num_classes,
            "layers": layers,
            "in_channels": input_shape[0],
            "with_input_batchnorm": with_input_batchnorm,
            "nodes_per_layer": nodes_per_layer,
            "multiplier": multiplier,
            "stem_multiplier": stem_multiplier,
            "space": space,
            "reduction_cells": self.reduction_cells,
        }
        self.input_shape = tuple(input_shape)
        shape = (len(inputs), len(self.primitives))
        self.alphas_normal = nn.Parameter(1e-3 * torch.randn(shape, generator=generator))
        self.alphas_reduce = nn.Parameter(1e-3 * torch.randn(shape, generator=generator))
        tables, self.fixed_costs = cost_tables(self, self.input_shape, self.hardware)
        for name, table in tables.items():
            self.register_buffer(f"cost_{name}", table, persistent=False)

    def cell_weights(self, reduction: bool) -> Tensor:
        """The softmaxed alphas of the reduction or normal cells."""
        return F.softmax(self.alphas_reduce if reduction else self.alphas_normal, dim=-1)

    def arch_parameters(self) -> list[nn.Parameter]:
        """`[alphas_normal, alphas_reduce]`."""
        return [self.alphas_normal, self.alphas_reduce]

    def cost_table(self, name: str) -> Tensor:
        """`[2 (normal, reduce), edges, primitives]`: each candidate's cost under `name`, over the cells of a kind."""
        return getattr(self, f"cost_{COST_MODELS.entry(name).name}")

    def expected_cost(self, regularizer: str | None = None, uniform: bool = False) -> Tensor:
        """The softmax-weighted cost of the candidate operations (at uniform weights with `uniform`).

        Summed over cells and edges, or for a peak-type cost (`reduce="max"`) the largest edge's. Stem, cell
        preprocessing and classifier are fixed and left out.
        """
        name = COST_MODELS.entry(regularizer or self.regularizer).name
        table = self.cost_table(name)
        weights = torch.stack([self.cell_weights(False), self.cell_weights(True)])
        weighted = table.to(weights.dtype).mean(dim=-1) if uniform else weights * table.to(weights.dtype)
        if COST_MODELS.meta(name)["reduce"] == "max":
            return weighted.amax() if uniform else weighted.sum(dim=-1).amax()
        return weighted.sum()

    def cost(self, name: str | None = None) -> Tensor:
        """The expected cost of the whole network: the fixed layers' cost combined with `expected_cost`."""
        name = COST_MODELS.entry(name or self.regularizer).name
        return combine(name, [self.fixed_costs[name], self.expected_cost(name)])

    def genotype(self) -> Genotype_CNN:
        """Per node, the two inputs whose strongest non-`none` operation weighs most, with that operation."""
        nodes, multiplier = self.config["nodes_per_layer"], self.config["multiplier"]
        concat = list(range(2 + nodes - multiplier, 2 + nodes))
        normal, reduce = (self._parse(self.cell_weights(r).detach()) for r in (False, True))
        return Genotype_CNN(normal=normal, normal_concat=concat, reduce=reduce, reduce_concat=concat)

    def _parse(self, weights: Tensor) -> list[tuple[str, int]]:
        usable = torch.tensor([name != "none" for name in self.primitives], device=weights.device)
        masked = weights.masked_fill(~usable, float("-inf"))
        best_weight, best_op = masked.max(dim=1)
        chosen: list[tuple[str, int]] = []
        start = 0
        for k in range(self.config["nodes_per_layer"]):
            edges = range(start, start + 2 + k)
            top = sorted(edges, key=lambda e: -float(best_weight[e]))[:2]
            chosen += [(self.primitives[int(best_op[e])], e - start) for e in sorted(top, key=lambda e: e - start)]
            start += 2 + k
        return chosen

    def arch_export(self) -> NetworkCnn:
        """A freshly initialised `NetworkCnn` of the current genotype (DARTS retrains the found network)."""
        return NetworkCnn(genotype=self.genotype(), **self.config)

    def exported_cost(self) -> Cost:
        """Parameters and MACs per sample of `arch_export()`."""
        return measure(self.arch_export(), self.input_shape)

    def get_size(self) -> int:
        """Parameters of the network of the current genotype."""
        return int(self.exported_cost().params)

    def get_macs(self) -> int:
        """MACs per sample of the network of the current genotype."""
        return int(self.exported_cost().macs)

    def arch_summary(self) -> dict[str, Any]:
        """The genotype, the softmaxed alphas, and the exported network's parameters and MACs."""
        cost = self.exported_cost()
        return {
            "genotype": self.genotype()._asdict(),
            "primitives": self.primitives,
            "weights_normal": self.cell_weights(False).tolist(),
            "weights_reduce": self.cell_weights(True).tolist(),
            "params": int(cost.params),
            "macs": int(cost.macs),
        }
