"""The FlatNAS flatness measure against a naive independent computation (deep copies perturbed one at a time)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from data import create_dataset
from robustness.flatness import FlatnessConfig, _correct, draw_noise, measure_flatness
from training.evaluate import accuracy
from utils.errors import UsageError

RESOLUTION = 8


@pytest.fixture(scope="module")
def splits():
    return create_dataset("digits")


def small_net(seed: int = 0) -> nn.Module:
    """A conv-BN-ReLU network with non-trivial batch-norm statistics, in eval mode."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32, 10),
    )
    net[1].running_mean.uniform_(-0.5, 0.5)
    net[1].running_var.uniform_(0.5, 2.0)
    return net.eval()


def naive_flatness(net, splits, sigmas, m, seed):
    """Mean over sigmas and draws of |acc(w) - acc(w + sigma w eps)|, each copy perturbed and validated alone."""
    top1 = accuracy(net, splits, "valid", RESOLUTION)
    noise = draw_noise([p for p in net.parameters()], m, seed)
    per_sigma = []
    for sigma in sigmas:
        changes = []
        for eps in noise:
            copy_ = copy.deepcopy(net)
            with torch.no_grad():
                for p, e in zip(copy_.parameters(), eps, strict=True):
                    p.add_(sigma * p * e)
            changes.append(abs(top1 - accuracy(copy_, splits, "valid", RESOLUTION)))
        per_sigma.append(sum(changes) / len(changes))
    return top1, per_sigma


@pytest.mark.parametrize("vectorise", [False, True])
def test_equals_the_naive_computation_over_several_sigmas(splits, vectorise):
    net = small_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    cfg = FlatnessConfig(sigma_min=0.1, sigma_max=0.5, sigma_step=0.2, n_perturb=3)
    assert cfg.sigmas() == (0.1, 0.3, 0.5)
    measured = measure_flatness(net, splits, "valid", RESOLUTION, cfg, seed=4, batch_size=64, vectorise=vectorise)
    top1, per_sigma = naive_flatness(net, splits, cfg.sigmas(), 3, seed=4)
    assert measured.top1 == pytest.approx(top1, abs=1e-9)
    assert measured.per_sigma == pytest.approx(per_sigma, abs=1e-9)
    assert measured.robustness == pytest.approx(sum(per_sigma) / 3, abs=1e-9)
    assert measured.robustness > 0
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # the network is left unchanged
    stats = measured.stats()
    assert stats["sigma"] == [0.1, 0.3, 0.5] and stats["robustness"] == measured.robustness


def test_seeded_and_zero_for_a_vanishing_sigma(splits):
    net = small_net()
    cfg = FlatnessConfig(sigma_min=0.3, sigma_max=0.3, n_perturb=4)
    a = measure_flatness(net, splits, "valid", RESOLUTION, cfg, seed=1)
    assert a == measure_flatness(net, splits, "valid", RESOLUTION, cfg, seed=1)
    assert a != measure_flatness(net, splits, "valid", RESOLUTION, cfg, seed=2)
    tiny = measure_flatness(net, splits, "valid", RESOLUTION, FlatnessConfig(1e-12, 1e-12, 0.0, 2), seed=1)
    assert tiny.robustness == 0.0 and tiny.top1 == a.top1


def test_larger_noise_moves_accuracy_more(splits):
    net = small_net()
    cfg = FlatnessConfig(sigma_min=0.01, sigma_max=1.0, sigma_step=0.99, n_perturb=5)
    small, large = measure_flatness(net, splits, "valid", RESOLUTION, cfg, seed=0).per_sigma
    assert small < large


def test_a_prediction_with_non_finite_logits_counts_as_wrong():
    logits = torch.tensor([[2.0, 1.0], [float("nan"), 0.0], [float("inf"), 0.0], [0.0, 1.0]])
    assert int(_correct(logits, torch.tensor([0, 0, 0, 0]))) == 1
    assert _correct(torch.stack([logits, logits]), torch.tensor([0, 0, 0, 0])).tolist() == [1, 1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sigma_min": 0.0, "sigma_max": 0.0}, "--sigma_min must be > 0"),
        ({"sigma_min": 0.2, "sigma_max": 0.1}, "--sigma_max must be >= --sigma_min"),
        ({"sigma_min": 0.1, "sigma_max": 0.2, "sigma_step": 0.0}, "--sigma_step must be > 0"),
        ({"n_perturb": 0}, "--n_perturb must be >= 1"),
    ],
)
def test_bad_settings_are_one_line(kwargs, message):
    with pytest.raises(UsageError, match=message):
        FlatnessConfig(**kwargs).validate()
