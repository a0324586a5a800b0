"""The one-shot supernet: path, softmax and Gumbel forward passes, extraction, parameters, errors."""

import numpy as np
import pytest
import torch
from torch import nn

from oneshot.spaces import create_oneshot_spec, list_oneshot_spaces
from oneshot.supernet import FORWARD_MODES, OneShotNet, OneShotSupernet, build_network, gumbel_noise
from search_space.base import InvalidArchitecture
from utils.errors import UsageError

N_CLASSES = 5
R = 16
SUPERNETS: dict[tuple[str, str], OneShotSupernet] = {}


def supernet(name: str, scale: str = "cifar") -> OneShotSupernet:
    """A seeded width-0.25 supernet with non-trivial batch-norm statistics, in eval mode (built once per test run)."""
    if (name, scale) not in SUPERNETS:
        torch.manual_seed(0)
        net = OneShotSupernet(create_oneshot_spec(name, scale, 0.25), N_CLASSES)
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
        SUPERNETS[name, scale] = net.eval()
    return SUPERNETS[name, scale]


def x(batch: int = 2, r: int = R) -> torch.Tensor:
    return torch.randn(batch, 3, r, r, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("scale", ["cifar", "imagenet"])
@pytest.mark.parametrize("name", list_oneshot_spaces())
def test_path_forward_equals_the_extracted_network(name, scale):
    net = supernet(name, scale)
    rng = np.random.default_rng(0)
    paths = [
        [0] * net.spec.n_layers,
        [n - 1 for n in net.spec.n_choices],
        *(net.spec.sample_path(rng) for _ in range(2)),
    ]
    with torch.no_grad():
        for path in paths:
            sub = net.extract(path)
            assert isinstance(sub, OneShotNet) and not sub.training
            y = net(x(), path)
            assert y.shape == (2, N_CLASSES)
            torch.testing.assert_close(sub(x()), y, atol=1e-6, rtol=0)


def test_extract_copies_weights_and_matches_build_network():
    net = supernet("singlepath")
    path = [3, *[2] * 20]
    sub = net.extract(path)
    fresh = build_network(net.spec, path, N_CLASSES)
    assert {k: v.shape for k, v in sub.state_dict().items()} == {k: v.shape for k, v in fresh.state_dict().items()}
    before = net(x(), path)
    with torch.no_grad():
        for p in sub.parameters():
            p.add_(1.0)
    assert torch.equal(net(x(), path), before)  # deep copies: the supernet is untouched
    assert sum(p.numel() for p in sub.parameters()) < sum(p.numel() for p in net.weight_parameters())
    assert net.train().extract(path).training
    net.eval()


def test_training_a_path_touches_only_its_candidates():
    net = supernet("proxyless")
    net.train()
    net.zero_grad()
    path = [1] * net.spec.n_layers
    net(x(4), path).sum().backward()
    net.eval()
    layer = net.layers[2]
    assert layer.ops["mb_k3_e6"].expand[0].weight.grad is not None
    assert layer.ops["mb_k5_e3"].expand[0].weight.grad is None
    assert all(a.grad is None for a in net.alpha)
    net.zero_grad()


def test_parameters_split_into_arch_and_weights():
    net = supernet("fbnet")
    arch, weights = net.arch_parameters(), net.weight_parameters()
    assert [a.shape for a in arch] == [(9,)] * 22 and all(torch.count_nonzero(a) == 0 for a in arch)
    assert len(arch) + len(weights) == len(list(net.parameters()))
    assert not {id(p) for p in arch} & {id(p) for p in weights}
    probs = net.probabilities()
    assert all(torch.allclose(p, torch.full((9,), 1 / 9)) for p in probs)
    assert net.argmax_path() == [0] * 22


def set_alpha(net: OneShotSupernet, path: list[int], value: float) -> None:
    with torch.no_grad():
        for a, c in zip(net.alpha, path, strict=True):
            a.zero_()
            a[c] = value


@pytest.mark.parametrize("name", list_oneshot_spaces())
def test_softmax_with_a_dominant_alpha_is_that_path(name):
    net = supernet(name)
    path = net.spec.sample_path(np.random.default_rng(5))
    set_alpha(net, path, 30.0)
    try:
        assert net.argmax_path() == path
        with torch.no_grad():
            torch.testing.assert_close(net(x(), mode="softmax"), net(x(), path), atol=1e-4, rtol=1e-4)
        probs = net.probabilities()
        assert all(p.requires_grad and abs(float(p.detach().sum()) - 1) < 1e-6 for p in probs)
    finally:
        set_alpha(net, path, 0.0)


def replay_gumbel(net: OneShotSupernet, seed: int, tau: float = 1.0) -> tuple[list[int], list[torch.Tensor]]:
    """The path and soft weights a Gumbel forward pass draws with a generator seeded `seed`."""
    gen = torch.Generator().manual_seed(seed)
    path, soft = [], []
    for a in net.alpha:
        w = torch.softmax((a.detach() + gumbel_noise(a.numel(), gen)) / tau, -1)
        soft.append(w)
        path.append(int(w.argmax()))
    return path, soft


@pytest.mark.parametrize("name", ["proxyless", "spos", "singlepath"])
def test_gumbel_hard_is_exactly_the_drawn_path_with_gradients_to_every_alpha(name):
    net = supernet(name)
    with torch.no_grad():
        for i, a in enumerate(net.alpha):
            a.copy_(torch.linspace(-1, 1, a.numel()) * (i % 3))
    try:
        path, _ = replay_gumbel(net, 7, tau=0.5)
        y = net(x(), mode="gumbel", tau=0.5, hard=True, generator=torch.Generator().manual_seed(7))
        with torch.no_grad():
            assert torch.equal(y, net(x(), path))
        net.zero_grad()
        y.pow(2).sum().backward()
        for a in net.alpha:
            assert a.grad is not None and torch.count_nonzero(a.grad) == a.numel()
    finally:
        net.zero_grad()
        set_alpha(net, [0] * net.spec.n_layers, 0.0)


def test_gumbel_soft_is_the_weighted_sum_and_reproducible():
    net = supernet("fbnet")
    gen = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    with torch.no_grad():
        a = net(x(), mode="gumbel", generator=gen(3))
        b = net(x(), mode="gumbel", generator=gen(3))
        c = net(x(), mode="gumbel", generator=gen(4))
        assert torch.equal(a, b) and not torch.allclose(a, c)
        h1 = net(x(), mode="gumbel", hard=True, generator=gen(3))
        assert torch.equal(h1, net(x(), mode="gumbel", hard=True, generator=gen(3)))
    # soft weights: the layer outputs mixed with the replayed weights
    _, soft = replay_gumbel(net, 3)
    y = net.stem(x())
    with torch.no_grad():
        for layer, w in zip(net.layers, soft, strict=True):
            y = sum(wi * layer.run(y, i) for i, wi in enumerate(w))
        torch.testing.assert_close(net.tail(y), a, atol=1e-6, rtol=0)
    net.zero_grad()
    net(x(), mode="gumbel", generator=gen(3)).sum().backward()
    assert all(p.grad is not None and torch.count_nonzero(p.grad) > 0 for p in net.arch_parameters())
    net.zero_grad()


def test_gumbel_noise_is_drawn_on_the_cpu_generator():
    a = gumbel_noise(5, torch.Generator().manual_seed(0))
    assert a.device.type == "cpu" and torch.equal(a, gumbel_noise(5, torch.Generator().manual_seed(0)))
    assert torch.isfinite(gumbel_noise(100000, torch.Generator().manual_seed(1))).all()


def test_layer_input_shapes_are_what_the_layers_see():
    for name in list_oneshot_spaces():
        net = supernet(name, "imagenet")
        seen = []
        with torch.no_grad():
            y = net.stem(x(1, 32))
            for layer in net.layers:
                seen.append(tuple(y.shape[1:]))
                y = layer.run(y, 0)
        assert seen == net.layer_input_shapes(32)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"mode": "darts"}, UsageError, "unknown forward mode 'darts'; choose one of: path, softmax, gumbel"),
        ({}, UsageError, "mode 'path' needs a path"),
        ({"path": [0] * 3}, InvalidArchitecture, "a path has 21 choices"),
        ({"path": [0, 9, *[0] * 19]}, InvalidArchitecture, "layer 1 choice 9 is outside \\[0, 6\\]"),
        ({"path": [0] * 21, "mode": "softmax"}, UsageError, "takes no path"),
        ({"mode": "gumbel", "tau": 0.0}, UsageError, "tau must be > 0"),
    ],
)
def test_bad_forward_calls_are_one_line_errors(kwargs, error, match):
    assert FORWARD_MODES == ("path", "softmax", "gumbel")
    net = supernet("proxyless")
    with pytest.raises(error, match=match) as err:
        net(x(), **kwargs)
    assert "\n" not in str(err.value)
    with pytest.raises(InvalidArchitecture, match="layer 20 choice 6"):
        net.extract([0] * 20 + [6])
