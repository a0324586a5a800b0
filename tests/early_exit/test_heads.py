"""Exit heads: outputs, exact MACs, and the max-pool rule of `build_heads`."""

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from early_exit.costs import forward_macs
from early_exit.heads import DEFAULT_HEAD, ExitHead, HeadConfig, build_heads


def flop_macs(module: nn.Module, shape) -> int:
    module.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.zeros(1, *shape))
    return counter.get_total_flops() // 2


@pytest.mark.parametrize("confidence", [True, False])
def test_head_outputs(confidence):
    torch.manual_seed(0)
    head = ExitHead(24, 10, confidence)
    logits, conf = head(torch.randn(5, 24, 6, 6))
    assert logits.shape == (5, 10)
    if confidence:
        assert conf.shape == (5,) and bool(((conf > 0) & (conf < 1)).all())
        assert head.linear.out_features == 11
    else:
        assert conf is None and head.linear.out_features == 10


@pytest.mark.parametrize("pool", [1, 2, 4])
def test_head_macs_are_exact(pool):
    head = ExitHead(24, 10, True, DEFAULT_HEAD, pool)
    side = 8 // pool
    expected = (24 * 32 + 32 * 64 + 64 * 128) * 9 * side * side + 128 * 11
    assert forward_macs(head, (24, 8, 8)) == (expected, (10,))
    assert flop_macs(head, (24, 8, 8)) == expected
    assert any(isinstance(m, nn.MaxPool2d) for m in head.modules()) == (pool > 1)


def test_head_config_sets_the_conv_stack():
    head = ExitHead(16, 3, False, HeadConfig(channels=(8,), kernel_size=1))
    convs = [m for m in head.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(16, 8, (1, 1))]
    assert forward_macs(head, (16, 4, 4))[0] == 16 * 8 * 16 + 8 * 3


def head_macs(shape, pool):
    return forward_macs(ExitHead(shape[0], 10, True, DEFAULT_HEAD, pool), shape)[0]


def test_no_pool_when_the_exit_is_cheaper_than_the_next():
    shape = (24, 8, 8)
    heads = build_heads([shape], [100, 100 + head_macs(shape, 1) + 1], 10, True)
    assert [h.pool for h in heads] == [1]


def test_pool_doubles_until_the_exit_is_cheaper_than_the_next():
    shape = (24, 8, 8)
    # as costly as the next exit without a pool (not strictly cheaper), cheaper with a 2 x 2 pool
    final = 100 + head_macs(shape, 1)
    assert [h.pool for h in build_heads([shape], [100, final], 10, True)] == [2]
    # cheaper only with a 4 x 4 pool
    final = 100 + head_macs(shape, 2)
    assert [h.pool for h in build_heads([shape], [100, final], 10, True)] == [4]


def test_pool_stops_at_the_feature_map_size():
    heads = build_heads([(24, 8, 8), (40, 3, 3)], [3 * 10**9, 2 * 10**9, 1], 10, False)
    assert [h.pool for h in heads] == [8, 2]
    assert heads[0](torch.zeros(2, 24, 8, 8))[0].shape == (2, 10)


def test_each_exit_is_compared_with_the_next_head_included():
    shapes = [(24, 8, 8), (40, 4, 4)]
    last = head_macs(shapes[1], 1)
    # exit 1 is cheap enough unpooled; exit 0 is compared with exit 1's backbone plus its head
    macs = [200 + last - head_macs(shapes[0], 1), 200, 200 + last + 1]
    assert [h.pool for h in build_heads(shapes, macs, 10, True)] == [2, 1]
    macs[0] -= 1
    assert [h.pool for h in build_heads(shapes, macs, 10, True)] == [1, 1]


def test_build_heads_checks_the_mac_list():
    with pytest.raises(ValueError):
        build_heads([(24, 8, 8)], [1], 10, True)
