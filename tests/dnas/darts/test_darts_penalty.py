import math

import pytest
import torch

from dnas.darts import Architect, NetworkCnn, NetworkSearchCnn, ResourcePenalty, beta_decay, measure
from dnas.darts.genotypes import IMAGE_2D
from utils.errors import UsageError


def reduction_only_net():
    """One reduction cell of one node (two edges, stride 2) at C=8 on (4, 8, 1) inputs: T 8 -> 4."""
    net = NetworkSearchCnn(
        4, 3, 1, (4, 8, 1), nodes_per_layer=1, multiplier=1, stem_multiplier=1, space="1d",
        primitives=["none", "max_pool_3x1", "conv_bn_relu_1x1"],
    )  # fmt: skip
    with torch.no_grad():
        net.alphas_reduce.copy_(torch.log(torch.tensor([0.5, 0.25, 0.25])).expand(2, 3))
    return net


def test_cost_tables_count_each_candidate_at_its_shapes():
    net = reduction_only_net()
    # per edge: none 0; max pool 0 params, 8 ch x 3 taps x 4 positions = 96 MACs; 1x1 conv 8x8 = 64, x 4 = 256
    assert net.cost_table("size")[1].tolist() == [[0, 0, 64], [0, 0, 64]]
    assert net.cost_table("macs")[1].tolist() == [[0, 96, 256], [0, 96, 256]]
    assert net.cost_table("params")[0].abs().sum() == 0  # no normal cell
    # outputs: 8 ch x 4 positions; live while running: 8 x 8 in + 32 out (the pool and the conv alike)
    assert net.cost_table("activations")[1].tolist() == [[0, 32, 32], [0, 32, 32]]
    assert net.cost_table("peak_act")[1].tolist() == [[0, 96, 96], [0, 96, 96]]


def test_penalty_equals_hand_computed_expected_cost():
    net = reduction_only_net()
    assert net.expected_cost("size").item() == pytest.approx(2 * 0.25 * 64)  # 32
    assert net.expected_cost("macs").item() == pytest.approx(2 * (0.25 * 96 + 0.25 * 256))  # 176
    assert ResourcePenalty("Compute", weight=2.0, budget=100.0)(net).item() == pytest.approx(2 * (1.76 - 1))
    assert ResourcePenalty("Compute", weight=2.0, budget=200.0)(net).item() == 0.0  # under budget: no pressure
    # without a budget the reference is the uniform expectation: 2 x 64 / 3
    assert ResourcePenalty("Memory")(net).item() == pytest.approx(32 / (128 / 3))
    assert ResourcePenalty("none")(net).item() == 0.0


def alphas_after_penalty_alone(mode):
    """C=2 normal cell, candidates: avg pool (0 params, 6 MACs/pos), 1x1 conv (4, 4), sep conv 3 (20, 20)."""
    torch.manual_seed(0)
    net = NetworkSearchCnn(
        2, 3, 3, (2, 8, 1), nodes_per_layer=1, multiplier=1, space="1d",
        primitives=["avg_pool_3x1", "conv_bn_relu_1x1", "sep_conv_3x1"],
    )  # fmt: skip
    architect = Architect(net, arch_learning_rate=0.05, arch_weight_decay=0.0, penalty=ResourcePenalty(mode, 10.0))
    for _ in range(50):
        architect.optimizer.zero_grad()
        architect.regularization().backward()
        architect.optimizer.step()
    return net


@pytest.mark.parametrize("mode", ["Memory", "Compute"])
def test_strong_penalty_moves_alphas_to_cheaper_operations(mode):
    net = alphas_after_penalty_alone(mode)
    before = NetworkSearchCnn(
        2, 3, 3, (2, 8, 1), nodes_per_layer=1, multiplier=1, space="1d",
        primitives=["avg_pool_3x1", "conv_bn_relu_1x1", "sep_conv_3x1"],
    )  # fmt: skip
    regularizer = {"Memory": "size", "Compute": "macs"}[mode]
    assert net.expected_cost(regularizer) < 0.5 * before.expected_cost(regularizer)
    weights = net.cell_weights(False)
    assert (weights[:, 2] < 0.05).all()  # the sep conv, dearest in both, is dropped


def test_memory_and_compute_prefer_different_operations():
    # params: pool 0 < conv 4; MACs per position: conv 4 < pool 6 (pool taps count as MACs)
    memory = alphas_after_penalty_alone("Memory").cell_weights(False)
    compute = alphas_after_penalty_alone("Compute").cell_weights(False)
    assert (memory.argmax(1) == 0).all()
    assert (compute.argmax(1) == 1).all()


def test_measure_counts_every_parameter_and_conv_macs():
    net = NetworkCnn(4, 10, 3, IMAGE_2D, in_channels=3)
    cost = measure(net, (3, 8, 8))
    assert cost.params == sum(p.numel() for p in net.parameters())
    stem_macs = 3 * 12 * 9 * 64
    assert cost.macs > stem_macs and math.isfinite(cost.macs)


def test_bad_penalty_settings_are_usage_errors():
    with pytest.raises(UsageError, match="nas_optimization_mode"):
        ResourcePenalty("Latency")
    with pytest.raises(UsageError, match="resource_budget"):
        ResourcePenalty("Memory", budget=0.0)


def test_beta_decay_is_the_mean_logsumexp_of_the_alphas():
    net = reduction_only_net()
    with torch.no_grad():
        net.alphas_normal.zero_()
        net.alphas_reduce.fill_(2.0)
    assert beta_decay(net).item() == pytest.approx((math.log(3) + 2 + math.log(3)) / 2)
