"""Per-exit costs against FlopCounterMode and the OFA cost model; average MACs on hand-built cases."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from early_exit.costs import ExitCosts, average_macs, exit_costs
from early_exit.model import build_early_exit_net
from search_space.ofa_mbv3 import OFAMobileNetV3Space

SPACE = OFAMobileNetV3Space(lr=24, ur=32)
N_CLASSES = 10
CASES = [
    (SPACE.smallest(), (0, 1, 2, 3)),
    (SPACE.largest(), (0, 1, 2, 3)),
    *zip(SPACE.sample(3, np.random.default_rng(1)), [(1, 3), (0,), (2, 3)], strict=True),
]


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    return SPACE.build_supernet(N_CLASSES)


def flop_macs(module: nn.Module, x: torch.Tensor) -> int:
    module.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops() // 2


def params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("case", range(len(CASES)))
def test_costs_equal_flop_counts(supernet, case):
    arch, stages = CASES[case]
    r, depths = arch["r"], arch["d"]
    subnet = SPACE.extract(supernet, arch).eval()
    net = build_early_exit_net(subnet, depths, stages, N_CLASSES, r, confidence=True)
    costs = exit_costs(net, r)
    assert costs.n_exits == len(stages) + 1
    x = torch.zeros(1, 3, r, r)
    for i, stage in enumerate(stages):
        truncated = nn.Sequential(subnet.first_conv, *subnet.blocks[: 1 + sum(depths[: stage + 1])])
        assert round(costs.backbone_macs[i] * 1e6) == flop_macs(truncated, x)
        assert round(costs.backbone_params[i] * 1e6) == params(truncated)
        with torch.no_grad():
            features = truncated(x)
        assert round(costs.head_macs[i] * 1e6) == flop_macs(net.heads[i], features)
        assert round(costs.head_params[i] * 1e6) == params(net.heads[i])
    assert round(costs.backbone_macs[-1] * 1e6) == flop_macs(subnet, x)
    assert costs.backbone_macs[-1] == pytest.approx(SPACE.cost_function(N_CLASSES)(arch).macs, rel=1e-12)
    assert costs.head_macs[-1] == 0 and costs.head_params[-1] == 0
    assert round(costs.backbone_params[-1] * 1e6) == params(subnet)
    assert round(costs.params * 1e6) == params(net)
    assert costs.backbone_macs == sorted(costs.backbone_macs)


def test_a_single_exit_network_costs_the_subnet(supernet):
    arch = SPACE.smallest()
    net = build_early_exit_net(SPACE.extract(supernet, arch), arch["d"], (), N_CLASSES, arch["r"], confidence=False)
    costs = exit_costs(net, arch["r"])
    assert costs.head_macs == [0] and costs.head_params == [0]
    assert costs.backbone_macs == [pytest.approx(SPACE.cost_function(N_CLASSES)(arch).macs, rel=1e-12)]


COSTS = ExitCosts(
    backbone_macs=[1.0, 2.0, 4.0],
    head_macs=[0.5, 0.25, 0.0],
    head_params=[0.1, 0.2, 0.0],
    backbone_params=[1.0, 2.0, 3.0],
)


def test_every_input_at_exit_1_costs_the_backbone_to_it_and_the_heads_it_ran():
    assert average_macs([0.0, 1.0, 0.0], COSTS) == 2.0 + 0.5 + 0.25


def test_average_macs_on_a_mixed_case():
    # 1.5 at exit 0, 2.75 at exit 1, 4.75 at the final exit (after both heads)
    assert average_macs([0.5, 0.25, 0.25], COSTS) == pytest.approx(0.5 * 1.5 + 0.25 * 2.75 + 0.25 * 4.75)
    assert average_macs([0.0, 0.0, 1.0], COSTS) == 4.75
    assert COSTS.exit_macs == [1.5, 2.75, 4.75]
    assert COSTS.params == pytest.approx(3.3)


@pytest.mark.parametrize("fractions", [[0.5, 0.5], [0.5, 0.6, -0.1], [0.2, 0.2, 0.2]])
def test_average_macs_rejects_bad_fractions(fractions):
    with pytest.raises(ValueError):
        average_macs(fractions, COSTS)


def test_exit_costs_need_one_entry_per_exit():
    with pytest.raises(ValueError):
        ExitCosts(backbone_macs=[1.0, 2.0], head_macs=[0.5], head_params=[0.1, 0.0], backbone_params=[1.0, 2.0])
