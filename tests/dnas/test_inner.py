"""`dnas.inner`: the inner search that refines one candidate (registry, settings, the training run)."""

import pytest
import torch
from torch import nn

from data import create_dataset
from dnas.inner import INNER_SEARCHES, InnerConfig, list_inner_searches, refine
from hw.measure import model_cost
from training.config import OptimConfig
from utils.errors import UsageError

SPLITS = create_dataset("digits", vld_size=300, seed=0)


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )  # fmt: skip


def run(engine: str, strength: float, seed: int = 0):
    cfg = InnerConfig(engine, inner_epochs=2, inner_strength=strength, inner_lr=0.3, inner_images=256).validate()
    return refine(small_cnn(), SPLITS, 8, cfg, optim=OptimConfig(), seed=seed, device=torch.device("cpu"))


def test_every_registered_engine_is_a_choice_and_names_its_regulariser():
    assert list_inner_searches() == ["none", *INNER_SEARCHES.names(aliases=False)]
    assert {"pit", "fbnetv2"} <= set(list_inner_searches())
    assert InnerConfig("pit").regularizer == "macs" and InnerConfig("fbnetv2").regularizer == "latency"


@pytest.mark.parametrize("engine", INNER_SEARCHES.names(aliases=False))
def test_the_regulariser_shrinks_the_network_and_the_record_says_by_how_much(engine):
    refined = run(engine, strength=5.0)
    regularizer = InnerConfig(engine).regularizer
    before = model_cost(regularizer, small_cnn(), (3, 8, 8))
    after = model_cost(regularizer, refined.network, (3, 8, 8))
    assert refined.record["cost_before"] == pytest.approx(float(before))
    assert after < before
    assert refined.record["engine"] == engine and refined.record["epochs"] == 2 and refined.record["seconds"] > 0
    assert refined.network(torch.zeros(2, 3, 8, 8)).shape == (2, 10)


@pytest.mark.parametrize("engine", INNER_SEARCHES.names(aliases=False))
def test_the_same_seed_gives_the_same_refined_network(engine):
    a, b = run(engine, 1.0).network.state_dict(), run(engine, 1.0).network.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (InnerConfig("slim"), "--inner_search must be one of"),
        (InnerConfig("pit", inner_epochs=0), "--inner_epochs must be >= 1"),
        (InnerConfig("fbnetv2", inner_strength=-1.0), "--inner_strength >= 0"),
        (InnerConfig("pit", inner_lr=0.0), "--inner_lr > 0"),
        (InnerConfig("pit", inner_images=1), "--inner_images must be >= 2"),
    ],
)
def test_bad_settings_are_one_line(cfg, message):
    with pytest.raises(UsageError, match=message):
        cfg.validate()


def test_none_needs_no_epochs():
    assert not InnerConfig("none", inner_epochs=0).validate().enabled
