import copy

import pytest
import torch
import torch.nn.functional as F

from dnas.darts import Architect, NetworkSearchCnn, ResourcePenalty

ETA, WEIGHT_DECAY = 0.1, 1e-3


@pytest.fixture
def tiny(waves):
    torch.manual_seed(0)
    net = NetworkSearchCnn(
        2, 3, 3, (2, 16, 1), nodes_per_layer=1, multiplier=1, stem_multiplier=1, space="1d",
        primitives=["none", "skip_connect", "avg_pool_3x1", "conv_bn_relu_3x1"],
    ).double()  # fmt: skip
    with torch.no_grad():
        for alpha in net.arch_parameters():
            alpha.normal_(0.0, 0.5)
    (x_t, y_t), (x_v, y_v) = waves(64, 1)[:2]
    return net, x_t.double(), y_t, x_v.double(), y_v


def unrolled_objective(net, x_t, y_t, x_v, y_v):
    """L_val(w - eta (dL_train/dw + wd w), alpha): the function the unrolled gradient differentiates."""
    arch = {id(a) for a in net.arch_parameters()}
    weights = [p for p in net.parameters() if id(p) not in arch]
    grads = torch.autograd.grad(F.cross_entropy(net(x_t), y_t), weights)
    stepped = copy.deepcopy(net)
    stepped_weights = [p for p in stepped.parameters() if id(p) not in {id(a) for a in stepped.arch_parameters()}]
    with torch.no_grad():
        for w, s, g in zip(weights, stepped_weights, grads, strict=True):
            s.copy_(w - ETA * (g + WEIGHT_DECAY * w))
    return F.cross_entropy(stepped(x_v), y_v).item()


def test_unrolled_gradient_matches_finite_differences(tiny):
    net, x_t, y_t, x_v, y_v = tiny
    net.train()
    architect = Architect(net, unrolled=True, momentum=0.9, weight_decay=WEIGHT_DECAY, hessian_radius=1e-7)
    optimizer = torch.optim.SGD(net.parameters(), lr=ETA, momentum=0.9, weight_decay=WEIGHT_DECAY)
    analytic = architect.gradients(x_t, y_t, x_v, y_v, ETA, optimizer)
    h = 1e-5
    for alpha, grad in zip(net.arch_parameters(), analytic, strict=True):
        numeric = torch.zeros_like(alpha)
        for idx in range(alpha.numel()):
            values = []
            for sign in (1, -1):
                with torch.no_grad():
                    alpha.view(-1)[idx] += sign * h
                values.append(unrolled_objective(net, x_t, y_t, x_v, y_v))
                with torch.no_grad():
                    alpha.view(-1)[idx] -= sign * h
            numeric.view(-1)[idx] = (values[0] - values[1]) / (2 * h)
        assert numeric.abs().max() > 1e-4  # the test is not vacuous
        torch.testing.assert_close(grad, numeric, rtol=1e-4, atol=1e-7)


def test_unrolled_differs_from_first_order(tiny):
    net, x_t, y_t, x_v, y_v = tiny
    optimizer = torch.optim.SGD(net.parameters(), lr=ETA)
    first = Architect(net).gradients(x_t, y_t, x_v, y_v, ETA, optimizer)
    second = Architect(net, unrolled=True).gradients(x_t, y_t, x_v, y_v, ETA, optimizer)
    assert not torch.allclose(first[1], second[1])


def test_step_updates_alphas_and_leaves_weights(tiny):
    net, x_t, y_t, x_v, y_v = tiny
    weights = [p.detach().clone() for p in net.net_parameters()]
    alphas = [a.detach().clone() for a in net.arch_parameters()]
    optimizer = torch.optim.SGD(net.net_parameters(), lr=ETA, momentum=0.9)
    architect = Architect(net, unrolled=True, penalty=ResourcePenalty("Compute"), beta_weight=0.5)
    architect.step(x_t, y_t, x_v, y_v, ETA, optimizer)
    assert all(torch.equal(w, p) for w, p in zip(weights, net.net_parameters(), strict=True))
    assert not torch.equal(alphas[1], net.alphas_reduce)
    assert all(p.grad is None for p in net.net_parameters())
