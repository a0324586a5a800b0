"""Genotypes: the discrete result of a DARTS search, and two example genotypes."""

from __future__ import annotations

from collections import namedtuple

Genotype_CNN = namedtuple("Genotype_CNN", "normal normal_concat reduce reduce_concat")
Genotype_CNN.__doc__ = """A cell pair: `normal` / `reduce` list `(operation, input)` twice per node (input 0 and 1 are
the two previous cells, `k + 2` is node `k`); `*_concat` are the states concatenated as the cell's output."""

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
