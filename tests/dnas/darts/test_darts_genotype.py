import json

import pytest
import torch

from dnas.darts import (
    IMAGE_2D,
    TINYML_1D,
    DartsSearchConfig,
    Genotype_CNN,
    NetworkCnn,
    NetworkSearchCnn,
    default_primitives,
    genotype_record,
    read_genotype,
)
from dnas.darts.model import genotype_space
from utils.errors import UsageError


def set_row(alphas, edge, **values):
    names = default_primitives("1d")
    for name, value in values.items():
        alphas[edge, names.index(name)] = value


def test_genotype_from_hand_set_alphas():
    net = NetworkSearchCnn(4, 3, 3, (2, 16, 1), nodes_per_layer=2, multiplier=2, space="1d")
    normal = torch.zeros_like(net.alphas_normal)
    set_row(normal, 0, none=10.0, sep_conv_5x1=5.0)  # `none` is strongest but never chosen
    set_row(normal, 1, skip_connect=3.0)
    set_row(normal, 2, avg_pool_3x1=1.0)  # node 1: edges from s0 (weak), s1, node 0
    set_row(normal, 3, dil_conv_3x1=4.0)
    set_row(normal, 4, conv_bn_relu_3x1=6.0)
    reduce = torch.zeros_like(net.alphas_reduce)
    set_row(reduce, 0, max_pool_3x1=2.0)
    set_row(reduce, 1, none=9.0, conv_bn_relu_7x1=0.5)
    set_row(reduce, 2, sep_conv_7x1=3.0)
    set_row(reduce, 3, none=20.0)
    set_row(reduce, 4, dil_conv_5x1=3.0)
    with torch.no_grad():
        net.alphas_normal.copy_(normal)
        net.alphas_reduce.copy_(reduce)
    assert net.genotype() == Genotype_CNN(
        normal=[("sep_conv_5x1", 0), ("skip_connect", 1), ("dil_conv_3x1", 1), ("conv_bn_relu_3x1", 2)],
        normal_concat=[2, 3],
        reduce=[("max_pool_3x1", 0), ("conv_bn_relu_7x1", 1), ("sep_conv_7x1", 0), ("dil_conv_5x1", 2)],
        reduce_concat=[2, 3],
    )


@pytest.mark.parametrize(
    ("genotype", "shape", "nodes"),
    [(TINYML_1D, (3, 2, 21, 1), 2), (IMAGE_2D, (3, 1, 9, 9), 4)],
    ids=["1d", "2d"],
)
def test_network_from_genotype_runs_forward_and_backward(genotype, shape, nodes):
    net = NetworkCnn(4, 5, 4, genotype, in_channels=shape[1], with_input_batchnorm=True,
                     nodes_per_layer=nodes, multiplier=nodes)  # fmt: skip
    out = net(torch.randn(shape))
    assert out.shape == (shape[0], 5)
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("space", ["1d", "2d"])
def test_exported_search_genotype_builds_and_runs(space):
    shape = (2, 12, 1) if space == "1d" else (2, 8, 8)
    net = NetworkSearchCnn(3, 4, 3, shape, nodes_per_layer=2, multiplier=2, space=space)
    final = net.arch_export()
    assert final.genotype == net.genotype()
    final(torch.randn(2, *shape)).sum().backward()
    summary = net.arch_summary()
    assert summary["params"] == net.get_size() == sum(p.numel() for p in final.parameters())
    assert summary["macs"] == net.get_macs() > 0


def test_genotype_space_is_inferred_or_asked_for():
    assert genotype_space(TINYML_1D) == "1d"
    assert genotype_space(IMAGE_2D) == "2d"
    ambiguous = Genotype_CNN([("skip_connect", 0), ("skip_connect", 1)], [2], [("skip_connect", 0)] * 2, [2])
    with pytest.raises(UsageError, match="space"):
        NetworkCnn(4, 3, 3, ambiguous, nodes_per_layer=1, multiplier=1)
    NetworkCnn(4, 3, 3, ambiguous, nodes_per_layer=1, multiplier=1, space="1d")


def test_genotype_that_does_not_fit_the_arguments_is_a_usage_error():
    with pytest.raises(UsageError, match="nodes_per_layer"):
        NetworkCnn(4, 3, 3, TINYML_1D, nodes_per_layer=4, multiplier=4)
    broken = TINYML_1D._replace(normal=[("skip_connect", 0), ("skip_connect", 5), *TINYML_1D.normal[2:]])
    with pytest.raises(UsageError, match="invalid genotype"):
        NetworkCnn(4, 3, 3, broken, nodes_per_layer=2, multiplier=2)


def test_reduction_cells_can_be_placed_anywhere():
    search = NetworkSearchCnn(4, 3, 4, (2, 16, 1), nodes_per_layer=2, multiplier=2, space="1d", reduction_cells=[0, 3])
    assert search.reductions == [True, False, False, True] and search.config["reduction_cells"] == (0, 3)
    final = search.arch_export()
    assert final.reductions == search.reductions
    assert final(torch.randn(2, 2, 16, 1)).shape == (2, 3)
    assert NetworkCnn(4, 3, 6, TINYML_1D, in_channels=2, nodes_per_layer=2, multiplier=2).reduction_cells == (2, 4)
    with pytest.raises(UsageError, match=r"reduction cells must be cell indices in 0..3, got \[4\]"):
        NetworkCnn(4, 3, 4, TINYML_1D, nodes_per_layer=2, multiplier=2, reduction_cells=[4])
    with pytest.raises(UsageError, match="reduction cells must be cell indices"):
        DartsSearchConfig(nas_layers=2, nas_reduction_cells=(0, -1))


def test_a_genotype_record_round_trips_through_json():
    record = json.loads(json.dumps(genotype_record(IMAGE_2D)))
    assert record["normal"][0] == ["sep_conv_3x3", 0] and read_genotype(record) == IMAGE_2D
    for bad in ({**record, "normal": [["sep_conv_3x3", -1]]}, {**record, "extra": 1}, [1, 2]):
        with pytest.raises(UsageError, match="not a DARTS genotype record"):
            read_genotype(bad)
