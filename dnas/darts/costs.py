"""What a DARTS search counts, through `hw`: the cost tables of the candidate operations and exact measurements.

Costs cover convolutions, linear layers and pooling (`COST_KINDS`): pooling is a fixed-weight depthwise
convolution with no parameters and one MAC per window tap and output element, so a parameter count sees it as
free while a MAC count does not. Batch norms, ReLUs and additions are free (the search network's batch norms have
no affine parameters anyway).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from hw import COST_MODELS, HardwareModel, LayerShape, combine, layer_kind, model_cost, module_shape, trace

COST_KINDS = ("conv", "linear", "pool")
Key = tuple[int, int, int]  # (cell index, edge, primitive)


class Cost(NamedTuple):
    """Parameters and multiply-accumulates (per sample) of a network."""

    params: int
    macs: int


def measure(model: nn.Module, input_shape: Sequence[int]) -> Cost:
    """Every parameter of `model`, and its MACs per sample on one input of `input_shape` (without batch)."""
    params = sum(p.numel() for p in model.parameters())
    return Cost(params, int(model_cost("macs", model, input_shape, COST_KINDS)))


def _shapes(network: nn.Module, input_shape: Sequence[int]) -> tuple[dict[Key, list[LayerShape]], list[LayerShape]]:
    """The soft shapes of the counted layers of each candidate of each cell, and those of the fixed layers."""
    owner = {
        id(module): (c, e, o)
        for c, cell in enumerate(network.cells)
        for e, edge in enumerate(cell.edges)
        for o, op in enumerate(edge.ops)
        for module in op.modules()
    }
    candidates: dict[Key, list[LayerShape]] = {}
    fixed: list[LayerShape] = []
    for call in trace(network, input_shape):
        if layer_kind(call.module) in COST_KINDS:
            shape = module_shape(call.module, call.inputs[0], call.output).as_tensors()
            key = owner.get(id(call.module))
            (fixed if key is None else candidates.setdefault(key, [])).append(shape)
    return candidates, fixed


def cost_tables(
    network: nn.Module, input_shape: Sequence[int], hardware: HardwareModel
) -> tuple[dict[str, Tensor], dict[str, float]]:
    """Per registered cost model: a `[2 (normal, reduce), edges, primitives]` table and the fixed layers' cost.

    A table entry is the candidate's cost (its layers' costs combined) summed over the cells of that kind, or for
    a cost whose network value is a maximum (`reduce="max"`), the largest over them. The fixed layers are the
    stem, the cell input preprocessing and the classifier. Values are the cost models' tensor forms.
    """
    candidates, fixed = _shapes(network, input_shape)
    shape = (2, len(network.cells[0].edges), len(network.cells[0].edges[0].ops))
    tables, constants = {}, {}
    for entry in COST_MODELS.entries():
        table = torch.zeros(shape)
        for (c, e, o), layers in sorted(candidates.items()):
            value = combine(entry.name, [entry.factory(layer, hardware) for layer in layers])
            index = (int(network.reductions[c]), e, o)
            if entry.meta["reduce"] == "max":
                table[index] = torch.maximum(table[index], torch.as_tensor(value, dtype=table.dtype))
            else:
                table[index] += value
        tables[entry.name] = table
        constants[entry.name] = float(combine(entry.name, [entry.factory(layer, hardware) for layer in fixed]))
    return tables, constants
