import argparse

import pytest
import torch

from dnas.darts import DartsSearchConfig, NetworkCnn, search, search_and_get_model
from utils.errors import UsageError

SMALL = {
    "nas_init_channels": 4,
    "num_classes": 3,
    "nas_layers": 3,
    "in_channels": 2,
    "nas_nodes_per_layer": 2,
    "nas_multiplier": 2,
    "nas_stem_multiplier": 2,
    "lr": 0.05,
    "nas_budget": 4,
    "arch_learning_rate": 3e-3,
    "progress": False,
    "primitives": ["none", "skip_connect", "max_pool_3x1", "conv_bn_relu_3x1", "sep_conv_5x1", "dil_conv_3x1"],
}


def test_short_search_improves_validation_and_returns_a_valid_model(waves):
    train, valid = waves(256, 0), waves(128, 1)
    result = search(DartsSearchConfig(**SMALL, nas_optimization_mode="Compute", resource_weight=0.1), train, valid)
    start = result.history[0]["valid_top1"]
    best = result.history[result.best_epoch]["valid_top1"]
    assert result.best_epoch >= 1 and best > start + 20
    assert isinstance(result.model, NetworkCnn) and result.model.genotype == result.genotype
    assert all("none" not in name for name, _ in [*result.genotype.normal, *result.genotype.reduce])
    assert result.model(torch.randn(5, 2, 16, 1)).shape == (5, 3)
    objectives = [h["valid_loss"] + h["penalty"] for h in result.history[1:]]
    assert result.best_epoch == 1 + objectives.index(min(objectives))  # chosen on validation, not the last epoch


def test_search_is_seeded_and_accepts_a_namespace_with_loaders(waves):
    args = argparse.Namespace(**SMALL)
    args.nas_budget, args.unrolled = 1, True
    args.train_loader, args.valid_loader = waves(64, 0), waves(64, 1)
    first, second = search_and_get_model(args), search_and_get_model(vars(args))
    assert first.genotype == second.genotype
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"nas_optimizaton_mode": "Memory"}, "unknown DARTS search arguments: nas_optimizaton_mode"),
        ({"nas_optimization_mode": "Latency"}, "unknown nas_optimization_mode 'Latency'"),
        ({"nas_budget": 0}, "nas_budget=0"),
        ({"lr": -1.0}, "lr=-1.0"),
        ({"search_space": "3d"}, "unknown search_space"),
        ({"primitives": ["sep_conv_3x3"]}, "not primitives of the 1d space"),
        ({"in_channels": 5}, r"expected batches shaped \(B, 5, H, W\)"),
    ],
)
def test_bad_arguments_are_one_line_usage_errors(waves, change, message):
    args = {**SMALL, **change, "train_loader": waves(64, 0), "valid_loader": waves(64, 1)}
    with pytest.raises(UsageError, match=message) as err:
        search_and_get_model(args)
    assert "\n" not in str(err.value)


def test_loaders_are_required():
    with pytest.raises(UsageError, match="train_loader"):
        search_and_get_model(dict(SMALL))
