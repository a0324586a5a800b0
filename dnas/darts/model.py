"""`NetworkCnn`: the final network built from a genotype."""

from __future__ import annotations

from collections.abc import Collection

import torch
from torch import Tensor, nn

from dnas.darts.genotypes import Genotype_CNN
from dnas.darts.network import CellInputs, CellNetwork, edge_stride
from dnas.darts.operations import create_operation, operation_spaces
from utils.errors import UsageError


def genotype_space(genotype: Genotype_CNN) -> str:
    """The space (`1d` / `2d`) of a genotype's operations; a `UsageError` when they mix spaces or fit both."""
    names = {name for name, _ in [*genotype.normal, *genotype.reduce]}
    common = set.intersection(*(set(operation_spaces(n)) for n in names))
    if len(common) != 1:
        raise UsageError(f"cannot tell the space of genotype operations {sorted(names)}; pass space='1d' or '2d'")
    return common.pop()


class Cell(nn.Module):
    """A fixed cell: each node sums two operations of earlier states; the `concat` states form the output."""

    def __init__(
        self,
        ops: list[tuple[str, int]],
        concat: list[int],
        c_prev_prev: int,
        c_prev: int,
        channels: int,
        reduction: bool,
        reduction_prev: bool,
        space: str,
    ) -> None:
        super().__init__()
        if len(ops) % 2 or any(not 0 <= j < 2 + k // 2 for k, (_, j) in enumerate(ops)):
            raise UsageError(f"invalid genotype cell {ops}: two (operation, earlier state) pairs per node")
        if any(not 0 <= j < 2 + len(ops) // 2 for j in concat):
            raise UsageError(f"invalid genotype concat {concat} for {len(ops) // 2} nodes")
        self.inputs = CellInputs(c_prev_prev, c_prev, channels, reduction_prev, space, affine=True)
        self.indices = [j for _, j in ops]
        self.concat = list(concat)
        self.ops = nn.ModuleList(
            create_operation(name, channels, edge_stride(reduction, j, space), affine=True) for name, j in ops
        )

    def forward(self, s0: Tensor, s1: Tensor, weights: None = None) -> Tensor:
        """The concatenated output states."""
        states = self.inputs(s0, s1)
        for k in range(0, len(self.ops), 2):
            states.append(sum(self.ops[k + i](states[self.indices[k + i]]) for i in range(2)))
        return torch.cat([states[j] for j in self.concat], dim=1)


class NetworkCnn(CellNetwork):
    """The network of `genotype`: `layers` cells of `nodes_per_layer` nodes, reducing at `reduction_cells`.

    `multiplier` must equal the number of concatenated states of the genotype; `space` is inferred from the
    genotype's operation names when not given; `reduction_cells` defaults to one and two thirds of the depth.
    """

    def __init__(
        self,
        C: int,  # noqa: N803  (the upstream name)
        num_classes: int,
        layers: int,
        genotype: Genotype_CNN,
        in_channels: int = 3,
        with_input_batchnorm: bool = False,
        nodes_per_layer: int = 4,
        multiplier: int = 4,
        stem_multiplier: int = 3,
        space: str | None = None,
        reduction_cells: Collection[int] | None = None,
    ) -> None:
        space = space or genotype_space(genotype)
        for ops, concat in ((genotype.normal, genotype.normal_concat), (genotype.reduce, genotype.reduce_concat)):
            if len(ops) != 2 * nodes_per_layer or len(concat) != multiplier:
                raise UsageError(
                    f"genotype has {len(ops) // 2} nodes and concatenates {len(concat)} states; "
                    f"expected nodes_per_layer={nodes_per_layer}, multiplier={multiplier}"
                )

        def make_cell(reduction: bool, reduction_prev: bool, c_pp: int, c_p: int, c_c: int) -> tuple[nn.Module, int]:
            ops, concat = (genotype.reduce, genotype.reduce_concat) if reduction else genotype[:2]
            return Cell(ops, concat, c_pp, c_p, c_c, reduction, reduction_prev, space), multiplier

        super().__init__(
            C,
            num_classes,
            layers,
            in_channels,
            with_input_batchnorm,
            stem_multiplier,
            space,
            make_cell,
            reduction_cells,
        )
        self.genotype = genotype
