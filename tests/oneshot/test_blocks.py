"""Candidate blocks: shapes, residual rules, exact parameter counts, the superkernel's slices, bad inputs."""

import pytest
import torch
from torch import nn

from oneshot.blocks import (
    BLOCKS,
    SUPERKERNEL_CANDIDATES,
    ChannelShuffle,
    MBConv,
    ShuffleBlock,
    SuperKernelMBConv,
    channel_shuffle,
    create_block,
    list_blocks,
)
from utils.errors import UsageError

MB = [f"mb_k{k}_e{e}" for k in (3, 5, 7) for e in (3, 6)]
FB = [f"fb_k{k}_{v}" for k in (3, 5) for v in ("e1", "e1_g2", "e3", "e6")]
SHUFFLE = ["shuffle_k3", "shuffle_k5", "shuffle_k7", "shuffle_xception"]
SP = ["sp_k3_e3", "sp_k3_e6", "sp_k5_e3", "sp_k5_e6"]


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_every_paper_block_is_registered_with_help():
    assert set(MB + FB + SHUFFLE + SP + ["skip", "mb_k3_e1"]) == set(list_blocks())
    for name in list_blocks():
        assert BLOCKS.entry(name).help


@pytest.mark.parametrize("name", [n for n in sorted(BLOCKS.names()) if not n.startswith("shuffle")])
@pytest.mark.parametrize(("c_in", "c_out", "stride", "size"), [(8, 8, 1, 8), (8, 16, 2, 8), (8, 16, 1, 7)])
def test_block_output_shape(name, c_in, c_out, stride, size):
    block = create_block(name, c_in, c_out, stride).eval()
    y = block(torch.randn(2, c_in, size, size))
    out = (size - 1) // stride + 1
    assert y.shape == (2, c_out, out, out)


@pytest.mark.parametrize("name", SHUFFLE)
@pytest.mark.parametrize(("c_in", "c_out", "stride"), [(16, 16, 1), (16, 32, 2), (8, 24, 1)])
def test_shuffle_block_output_shape(name, c_in, c_out, stride):
    block = create_block(name, c_in, c_out, stride).eval()
    assert block(torch.randn(2, c_in, 8, 8)).shape == (2, c_out, 8 // stride, 8 // stride)


@pytest.mark.parametrize("name", [*MB, *FB, *SP])
def test_residual_only_with_stride_1_and_equal_widths(name):
    x = torch.randn(2, 8, 6, 6)
    for c_out, stride, residual in [(8, 1, True), (16, 1, False), (8, 2, False)]:
        block = create_block(name, 8, c_out, stride).eval()
        assert block.residual == residual
        nn.init.zeros_(block.project[1].weight)  # the branch outputs zeros
        y = block(x)
        if residual:
            assert torch.equal(y, x)
        else:
            assert torch.count_nonzero(y) == 0


def test_mbconv_exact_parameters_and_layout():
    # expand 8->24 (192 + BN 48), depthwise 24 x 3x3 (216 + 48), project 24->8 (192 + 16)
    assert n_params(create_block("mb_k3_e3", 8, 8, 1)) == 712
    mb1 = create_block("mb_k3_e1", 32, 16, 1)  # ProxylessNAS MBConv1: no expansion convolution
    assert isinstance(mb1.expand, nn.Identity)
    assert n_params(mb1) == 32 * 9 + 64 + 32 * 16 + 32
    relu6 = create_block("mb_k5_e6", 8, 8, 1)
    assert any(isinstance(m, nn.ReLU6) for m in relu6.modules())
    assert relu6.depthwise[0].kernel_size == (5, 5) and relu6.depthwise[0].groups == 48
    assert all(not isinstance(m, nn.Conv2d) or m.bias is None for m in relu6.modules())


def test_fbnet_e1_keeps_its_expansion_conv_and_g2_groups_and_shuffles():
    e1 = create_block("fb_k3_e1", 8, 8, 1)
    assert isinstance(e1.expand[0], nn.Conv2d) and e1.expand[0].out_channels == 8
    assert any(isinstance(m, nn.ReLU) for m in e1.modules())
    assert not any(isinstance(m, nn.ReLU6) for m in e1.modules())
    g2 = create_block("fb_k3_e1_g2", 8, 8, 1)
    assert g2.expand[0].groups == 2 and g2.project[0].groups == 2
    assert isinstance(g2.expand[-1], ChannelShuffle)
    # group-2 1x1s: 8*8/2 (+ BN 16) twice, depthwise 8*9 (+ BN 16)
    assert n_params(g2) == 2 * (32 + 16) + 72 + 16


def test_channel_shuffle_interleaves_the_groups():
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]


def test_skip_is_identity_or_a_strided_1x1_conv():
    assert isinstance(create_block("skip", 8, 8, 1), nn.Identity)
    for c_out, stride in [(16, 1), (8, 2), (16, 2)]:
        conv, bn = create_block("skip", 8, c_out, stride)
        assert isinstance(bn, nn.BatchNorm2d)
        assert (conv.kernel_size, conv.stride, conv.in_channels, conv.out_channels) == ((1, 1), (stride,) * 2, 8, c_out)


def test_shuffle_block_split_keeps_the_first_half():
    block = create_block("shuffle_k5", 16, 16, 1).eval()
    x = torch.randn(2, 16, 6, 6)
    y = block(x)
    assert torch.equal(y[:, 0::2], x[:, :8])  # after the shuffle the untouched half sits on the even channels
    # main branch: 1x1 8->8 (64 + 16), dw 5x5 (200 + 16), 1x1 8->8 (64 + 16)
    assert n_params(block) == 376 and block.proj is None


def test_shuffle_block_widening_branches_and_xception():
    block = create_block("shuffle_k3", 16, 64, 2)
    assert block.proj is not None
    assert block.proj[0][0].stride == (2, 2) and block.proj[1][0].out_channels == 16
    assert block.main[-1][0].out_channels == 48 and block.main[0][0].out_channels == 32
    xc = create_block("shuffle_xception", 16, 16, 1)
    depthwise = [m for m in xc.main.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 3 and all(m.kernel_size == (3, 3) for m in depthwise)
    assert isinstance(ShuffleBlock(16, 32, 1), ShuffleBlock)  # widening at stride 1 (CIFAR scale)


@pytest.mark.parametrize(
    ("name", "c_in", "c_out", "stride", "match"),
    [
        ("nope", 8, 8, 1, "unknown one-shot block 'nope'; choose one of: .*mb_k3_e3"),
        ("mb_k3_e3", 8, 8, 3, "stride must be 1 or 2"),
        ("mb_k3_e3", 0, 8, 1, "positive"),
        ("shuffle_k3", 9, 9, 1, "even channel counts"),
        ("shuffle_k3", 16, 8, 2, "must widen"),
        ("shuffle_k3", 16, 16, 2, "must widen"),
        ("fb_k3_e1_g2", 8, 12 + 1, 1, "even channel counts"),
    ],
)
def test_bad_blocks_are_one_line_usage_errors(name, c_in, c_out, stride, match):
    with pytest.raises(UsageError, match=match) as err:
        create_block(name, c_in, c_out, stride)
    assert "\n" not in str(err.value)


def test_superkernel_slices_the_centre_taps_and_the_first_channels():
    torch.manual_seed(0)
    sk = SuperKernelMBConv(8, 8, 1)
    dw = sk.depthwise[0].weight
    assert dw.shape == (48, 1, 5, 5)
    w = sk.sliced_weights(3, 3)
    assert torch.equal(w["depthwise"], dw[:24, :, 1:4, 1:4])
    assert torch.equal(w["expand"], sk.expand[0].weight[:24])
    assert torch.equal(w["project"], sk.project[0].weight[:, :24])
    assert torch.equal(sk.sliced_weights(5, 6)["depthwise"], dw)
    with pytest.raises(UsageError, match="k7 e3"):
        sk.sliced_weights(7, 3)


@pytest.mark.parametrize("name", SP)
@pytest.mark.parametrize(("c_out", "stride"), [(8, 1), (16, 2)])
def test_superkernel_candidate_equals_its_standalone_block(name, c_out, stride):
    torch.manual_seed(1)
    k, e = SUPERKERNEL_CANDIDATES[name]
    sk = SuperKernelMBConv(8, c_out, stride)
    for bn in (sk.expand[1], sk.depthwise[1], sk.project[1]):  # non-trivial statistics
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 2)
    sk.eval()
    block = sk.standalone(k, e)
    assert isinstance(block, MBConv) and not block.training
    assert type(block) is type(create_block(name, 8, c_out, stride))
    assert torch.equal(block.depthwise[0].weight, sk.sliced_weights(k, e)["depthwise"])
    assert torch.equal(block.expand[1].running_var, sk.expand[1].running_var[: 8 * e])
    x = torch.randn(2, 8, 7, 7)
    torch.testing.assert_close(block(x), sk(x, k, e), atol=1e-6, rtol=0)


def test_superkernel_training_updates_only_the_slice_statistics():
    sk = SuperKernelMBConv(8, 8, 1).train()
    sk(torch.randn(4, 8, 5, 5), 3, 3)
    mean = sk.expand[1].running_mean
    assert torch.count_nonzero(mean[:24]) == 24 and torch.count_nonzero(mean[24:]) == 0
    assert int(sk.expand[1].num_batches_tracked) == 1
    grads = torch.autograd.grad(sk(torch.randn(2, 8, 5, 5), 3, 3).sum(), sk.depthwise[0].weight)[0]
    assert torch.count_nonzero(grads[:, :, 0]) == 0 and torch.count_nonzero(grads[24:]) == 0
    assert torch.count_nonzero(grads[:24, :, 1:4, 1:4]) > 0
