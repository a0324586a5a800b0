import pytest
import torch

from oneshot.hc_loss import hardware_constraint_loss, to_count, to_millions
from oneshot.lut import LookupTable


def test_value_is_zero_within_the_target_and_linear_beyond():
    t = torch.tensor
    assert hardware_constraint_loss(t(90.0, dtype=torch.float64), 100.0, 2.0).item() == 0.0
    assert hardware_constraint_loss(t(100.0, dtype=torch.float64), 100.0, 2.0).item() == 0.0
    assert hardware_constraint_loss(t(130.0, dtype=torch.float64), 100.0, 2.0).item() == 2.0 * 30.0 / 100.0
    assert hardware_constraint_loss(t(1.5e6, dtype=torch.float64), 1e6, 0.005).item() == 0.005 * 0.5e6 / 1e6


def test_a_non_positive_target_is_an_error():
    with pytest.raises(ValueError, match="> 0"):
        hardware_constraint_loss(torch.tensor(1.0), 0.0, 1.0)


def test_millions_and_counts_convert_in_one_place():
    assert to_count(None) is None
    assert to_count(1.5) == 1_500_000
    assert to_count(0.0123456) == 12_346
    assert to_millions(2_500_000) == 2.5


def tiny_lut() -> LookupTable:
    table = [[3.0e6, 1.0e6, 2.5e6], [0.2e6, 4.0e6], [1.0e6, 1.5e6, 0.5e6, 2.0e6]]
    return LookupTable(resolution=16, fixed={"macs": 700_000}, table={"macs": [[int(v) for v in r] for r in table]})


def closed_form(alphas, lut, target, weight):
    """d loss / d alpha_lc = weight / target · p_lc · (T_lc − Σ_c' p_lc' T_lc') over the target, else 0."""
    grads = []
    for a, row in zip(alphas, lut.table["macs"], strict=True):
        p = torch.softmax(a.detach(), -1)
        t = torch.tensor(row, dtype=torch.float64)
        grads.append(weight / target * p * (t - (p * t).sum()))
    return grads


@pytest.mark.parametrize("weight", [0.005, 1.0, 37.5])
def test_gradient_over_the_target_is_the_closed_form(weight):
    lut = tiny_lut()
    gen = torch.Generator().manual_seed(3)
    alphas = [torch.randn(len(r), generator=gen, dtype=torch.float64, requires_grad=True) for r in lut.table["macs"]]
    expected = lut.expected([torch.softmax(a, -1) for a in alphas])
    target = float(expected.detach()) * 0.8
    loss = hardware_constraint_loss(expected, target, weight)
    assert loss.dtype == torch.float64
    torch.testing.assert_close(loss.detach(), weight * (expected.detach() - target) / target, rtol=1e-15, atol=0)
    grads = torch.autograd.grad(loss, alphas)
    for got, want in zip(grads, closed_form(alphas, lut, target, weight), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-18)


def test_gradient_within_the_target_is_exactly_zero():
    lut = tiny_lut()
    alphas = [torch.zeros(len(r), dtype=torch.float64, requires_grad=True) for r in lut.table["macs"]]
    expected = lut.expected([torch.softmax(a, -1) for a in alphas])
    loss = hardware_constraint_loss(expected, float(expected.detach()) * 1.01, 5.0)
    grads = torch.autograd.grad(loss, alphas)
    assert loss.item() == 0.0
    assert all(torch.equal(g, torch.zeros_like(g)) for g in grads)


def test_gradient_through_a_real_supernet_and_table(os_supernet, os_lut):
    net = os_supernet.double()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for a in net.arch_parameters():
            a.copy_(torch.randn(a.shape, generator=gen, dtype=torch.float64))
    expected = os_lut.expected(net.probabilities(), metric="macs")
    target = float(expected.detach()) * 0.9
    loss = hardware_constraint_loss(expected, target, 0.005)
    grads = torch.autograd.grad(loss, net.arch_parameters())
    for got, want in zip(grads, closed_form(net.arch_parameters(), os_lut, target, 0.005), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-18)
