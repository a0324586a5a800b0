import pytest
import torch

from dnas.pit import PITBatchNorm2d, PITConv1d, PITConv2d, PITLinear
from dnas.pit.masks import BetaMasker, GammaMasker, ste_binarize


def set_theta(masker, values):
    with torch.no_grad():
        masker.theta.copy_(torch.tensor(values, dtype=torch.float32))


def plain_copy(layer):
    plain = layer.plain_type(**layer.hparams(layer))
    plain.load_state_dict({k: v for k, v in layer.state_dict().items() if "masker" not in k})
    return plain


def test_ste_is_binary_forward_and_identity_backward():
    x = torch.tensor([0.2, 0.5, 0.9, -1.0], requires_grad=True)
    y = ste_binarize(x)
    assert y.tolist() == [0.0, 1.0, 1.0, 0.0]
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0, 1.0]


def test_beta_keeps_a_suffix_and_gamma_dilates():
    beta = BetaMasker(9)
    set_theta(beta, [0.0, 1, 0, 0.7, 0, 0, 0, 0, 0])  # theta[0] is fixed at 1
    assert beta.mask().tolist() == [1, 1, 1, 1, 0, 0, 0, 0, 0]  # taps t < 4 (the causal end)
    gamma = GammaMasker(9)  # dilations 1, 2, 4, 8
    assert gamma.theta.numel() == 4
    set_theta(gamma, [0, 0, 1, 0])
    assert gamma.mask().tolist() == [1, 0, 0, 0, 1, 0, 0, 0, 1]
    set_theta(gamma, [0, 0, 0, 0])  # the coarsest dilation is fixed
    assert gamma.mask().tolist() == [1, 0, 0, 0, 0, 0, 0, 0, 1]


def test_conv1d_channels_rf_and_dilation_equal_zeroed_plain_conv():
    torch.manual_seed(0)
    layer = PITConv1d(3, 6, 9, padding=4)
    set_theta(layer.out_masker, [1, 0, 1, 0.2, 1, 0])
    set_theta(layer.beta_masker, [1, 1, 1, 1, 1, 1, 0, 0, 0])  # 6 taps from the causal end
    set_theta(layer.gamma_masker, [0, 1, 1, 1])  # dilation 2
    plain = plain_copy(layer)
    with torch.no_grad():
        plain.weight[[1, 3, 5]] = 0
        plain.bias[[1, 3, 5]] = 0
        kept_taps = [0, 2, 4]  # distances from the causal end: t < 6 and even
        dropped = [k for k in range(9) if 8 - k not in kept_taps]
        plain.weight[..., dropped] = 0
    x = torch.randn(2, 3, 20)
    assert torch.allclose(layer(x), plain(x), atol=1e-6)


@pytest.mark.parametrize("groups", [1, 6])
def test_conv2d_channels_equal_zeroed_plain_conv(groups):
    torch.manual_seed(0)
    layer = PITConv2d(6, 6, 3, padding=1, groups=groups)
    set_theta(layer.out_masker, [1, 1, 0, 0, 1, 0])
    plain = plain_copy(layer)
    with torch.no_grad():
        plain.weight[[2, 3, 5]] = 0
        plain.bias[[2, 3, 5]] = 0
    x = torch.randn(2, 6, 5, 5)
    assert torch.allclose(layer(x), plain(x), atol=1e-6)


def test_linear_and_batch_norm_masks():
    torch.manual_seed(0)
    linear = PITLinear(5, 4)
    set_theta(linear.out_masker, [1, 0, 0, 1])
    plain = plain_copy(linear)
    with torch.no_grad():
        plain.weight[[1, 2]] = 0
        plain.bias[[1, 2]] = 0
    x = torch.randn(3, 5)
    assert torch.allclose(linear(x), plain(x), atol=1e-6)
    norm = PITBatchNorm2d(4)
    set_theta(norm.out_masker, [1, 0, 1, 0])
    y = norm(torch.randn(8, 4, 3, 3) + 2)
    assert y[:, [1, 3]].abs().max() == 0 and y[:, [0, 2]].abs().max() > 0


def test_all_ones_masks_compute_the_plain_layer():
    torch.manual_seed(0)
    for layer, x in [
        (PITConv1d(2, 3, 5, padding="same", dilation=2), torch.randn(2, 2, 11)),
        (PITConv2d(2, 3, 3, stride=2), torch.randn(2, 2, 7, 7)),
        (PITLinear(4, 3, bias=False), torch.randn(2, 4)),
    ]:
        assert torch.equal(layer(x), plain_copy(layer)(x))
