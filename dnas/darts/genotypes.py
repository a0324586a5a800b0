"""Genotypes: the discrete result of a DARTS search, and two example genotypes."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

from utils.errors import UsageError

Genotype_CNN = namedtuple("Genotype_CNN", "normal normal_concat reduce reduce_concat")
Genotype_CNN.__doc__ = """A cell pair: `normal` / `reduce` list `(operation, input)` twice per node (input 0 and 1 are
the two previous cells, `k + 2` is node `k`); `*_concat` are the states concatenated as the cell's output."""


def genotype_record(genotype: Genotype_CNN) -> dict[str, list[Any]]:
    """`genotype` as JSON-ready lists: `{"normal": [[op, input], ...], "normal_concat": [...], "reduce": ...}`."""
    return {
        "normal": [[name, int(j)] for name, j in genotype.normal],
        "normal_concat": [int(j) for j in genotype.normal_concat],
        "reduce": [[name, int(j)] for name, j in genotype.reduce],
        "reduce_concat": [int(j) for j in genotype.reduce_concat],
    }


def read_genotype(record: object) -> Genotype_CNN:
    """The genotype a `genotype_record` holds; anything else is a one-line `UsageError`.

    Only the shape is checked here: operation names and input indices are checked when a network is built.
    """
    fields = record if isinstance(record, dict) else {}

    def pairs(value: object) -> bool:
        return isinstance(value, list) and all(
            isinstance(p, list | tuple) and len(p) == 2 and isinstance(p[0], str) and _is_index(p[1]) for p in value
        )

    def indices(value: object) -> bool:
        return isinstance(value, list) and all(_is_index(j) for j in value)

    valid = set(fields) == set(Genotype_CNN._fields)
    valid = valid and all(pairs(fields[k]) for k in ("normal", "reduce"))
    if not (valid and all(indices(fields[k]) for k in ("normal_concat", "reduce_concat"))):
        raise UsageError(f"not a DARTS genotype record (normal, normal_concat, reduce, reduce_concat): {record!r:.200}")
    return Genotype_CNN(
        normal=[(name, int(j)) for name, j in fields["normal"]],
        normal_concat=[int(j) for j in fields["normal_concat"]],
        reduce=[(name, int(j)) for name, j in fields["reduce"]],
        reduce_concat=[int(j) for j in fields["reduce_concat"]],
    )


def _is_index(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


TINYML_1D = Genotype_CNN(
    normal=[
        ("sep_conv_5x1", 1),
        ("skip_connect", 0),
        ("conv_bn_relu_3x1", 2),
        ("dil_conv_3x1", 1),
    ],
    normal_concat=[2, 3],
    reduce=[
        ("max_pool_3x1", 0),
        ("sep_conv_3x1", 1),
        ("skip_connect", 2),
        ("conv_bn_relu_5x1", 1),
    ],
    reduce_concat=[2, 3],
)
"""A small two-node 1-D genotype for `(B, C, T, 1)` sensor data (`nodes_per_layer=2`, `multiplier=2`)."""

IMAGE_2D = Genotype_CNN(
    normal=[
        ("sep_conv_3x3", 0),
        ("sep_conv_3x3", 1),
        ("skip_connect", 0),
        ("sep_conv_5x5", 1),
        ("dil_conv_3x3", 2),
        ("skip_connect", 0),
        ("sep_conv_3x3", 3),
        ("avg_pool_3x3", 1),
    ],
    normal_concat=[2, 3, 4, 5],
    reduce=[
        ("max_pool_3x3", 0),
        ("sep_conv_5x5", 1),
        ("skip_connect", 2),
        ("max_pool_3x3", 1),
        ("dil_conv_5x5", 2),
        ("max_pool_3x3", 0),
        ("skip_connect", 2),
        ("sep_conv_3x3", 4),
    ],
    reduce_concat=[2, 3, 4, 5],
)
"""A four-node 2-D image genotype (`nodes_per_layer=4`, `multiplier=4`)."""
