"""PIT on real OFA MobileNetV3 subnets: residual additions, squeeze-excitation and h-swish kept, channels searched."""

import pytest
import torch

from dnas.pit import PIT
from tests.dnas.pit.ofa_subnets import (  # noqa: F401 (an autouse fixture)
    build,
    flop_macs,
    input_shape,
    layer_params,
    one_torch_thread,
    sampled_archs,
    stage_blocks,
)

ARCHS = sampled_archs()


@pytest.fixture(scope="module", params=range(len(ARCHS)), ids=lambda i: f"arch{i}")
def case(request):
    arch = ARCHS[request.param]
    net = build(arch)
    return arch, net, PIT(net, input_shape(arch), regularizer="macs").eval()


def masker(pit, name):
    return pit.seed.get_submodule(name).out_masker


def test_every_mask_on_computes_the_subnet(case):
    arch, net, pit = case
    x = torch.randn(3, *input_shape(arch), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(pit(x), net(x), atol=1e-5, rtol=0)


def test_expansion_and_stage_groups_are_searchable_and_shared(case):
    arch, net, pit = case
    groups = {id(layer.out_masker): layer.out_masker for layer in pit.searchable_layers().values()}
    trainable = [m for m in groups.values() if m.trainable]
    n_se = sum(name.endswith(".se") for name, _ in net.named_modules())
    # stem (= block 0, through its residual), one expansion per block, one output per stage, the SE middles,
    # final expansion and feature mix; the classifier alone is fixed
    assert len(trainable) == 1 + sum(arch["d"]) + 5 + n_se + 2
    assert len(groups) - len(trainable) == 1 and not masker(pit, "classifier.linear").trainable
    assert masker(pit, "blocks.0.conv.point_linear.conv") is masker(pit, "first_conv.conv")
    for stage in stage_blocks(net):
        output = masker(pit, f"blocks.{stage[0]}.conv.point_linear.conv")
        assert output.trainable
        for i in stage:
            expansion = masker(pit, f"blocks.{i}.conv.inverted_bottleneck.conv")
            assert expansion.trainable and masker(pit, f"blocks.{i}.conv.depth_conv.conv") is expansion
            assert masker(pit, f"blocks.{i}.conv.point_linear.conv") is output  # the residual additions
            if hasattr(net.blocks[i].conv.depth_conv, "se"):
                assert masker(pit, f"blocks.{i}.conv.depth_conv.se.fc.expand") is expansion  # the product x * y
                assert masker(pit, f"blocks.{i}.conv.depth_conv.se.fc.reduce").trainable


def test_pruned_export_computes_the_masked_network_and_its_costs(case):
    arch, net, pit = case
    pit = PIT(net, input_shape(arch), regularizer="macs")
    se_block = next(i for i, b in enumerate(net.blocks) if hasattr(b.conv.depth_conv, "se"))
    stage = stage_blocks(net)[1]
    pruned = {
        "first_conv.conv": [1, 2, 5],  # stem, shared with block 0 through its residual
        f"blocks.{stage[0]}.conv.point_linear.conv": [0, 3, 4, 10],  # a stage's output, through every residual
        f"blocks.{stage[1]}.conv.inverted_bottleneck.conv": list(range(1, 40)),
        f"blocks.{se_block}.conv.depth_conv.se.fc.reduce": [2, 3, 7],  # a squeeze-excitation middle
        "final_expand_layer.conv": list(range(0, 960, 3)),
    }
    with torch.no_grad():
        for name, channels in pruned.items():
            masker(pit, name).theta[channels] = 0.0
    pit.eval()
    exported = pit.arch_export().eval()
    shape = input_shape(arch)
    x = torch.randn(3, *shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(exported(x), pit(x), atol=1e-5, rtol=0)
    layer = exported.get_submodule(f"blocks.{stage[1]}.conv.point_linear.conv")
    assert layer.out_channels == net.blocks[stage[1]].conv.point_linear.conv.out_channels - 3  # channel 0 is kept
    assert exported.get_submodule("blocks.0.conv.depth_conv.conv").out_channels == 13
    # the engine counts every conv / linear layer, as FlopCounterMode does; the rest (batch norms, h-swish, the SE
    # means and products, residual additions, pooling) is counted by neither
    assert flop_macs(exported, shape) == pit.get_macs() < flop_macs(net, shape)
    assert layer_params(exported) == pit.get_size() < layer_params(net)
