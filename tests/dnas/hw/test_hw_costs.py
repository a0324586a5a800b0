import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dnas.hw import COST_MODELS, LayerShape, conv_macs, conv_params, linear_params, module_shape
from utils.errors import UsageError

LAYERS = [
    (nn.Conv1d(3, 8, 9, padding=4), (3, 32)),
    (nn.Conv1d(4, 6, 5, stride=2, dilation=3, bias=False), (4, 40)),
    (nn.Conv2d(3, 16, 3, stride=2, padding=1), (3, 17, 17)),
    (nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), (8, 12, 12)),
    (nn.Conv2d(8, 12, (3, 1), groups=4), (8, 10, 6)),
    (nn.Linear(20, 7), (20,)),
    (nn.Linear(20, 7, bias=False), (5, 20)),
]


@pytest.mark.parametrize(("layer", "input_shape"), LAYERS, ids=lambda v: type(v).__name__)
def test_costs_match_flop_counter_and_parameter_sum(layer, input_shape):
    x = torch.randn(1, *input_shape)
    with FlopCounterMode(display=False) as counter:
        out = layer(x)
    shape = module_shape(layer, out.shape)
    assert COST_MODELS.get("macs")(shape) == counter.get_total_flops() // 2
    assert COST_MODELS.get("size")(shape) == sum(p.numel() for p in layer.parameters())
    assert COST_MODELS.get("params")(shape) == COST_MODELS.get("size")(shape)


def test_costs_are_differentiable_in_soft_counts():
    c_in = torch.tensor(3.0, requires_grad=True)
    c_out = torch.tensor(8.0, requires_grad=True)
    taps = torch.tensor(5.0, requires_grad=True)
    params = conv_params(c_in, c_out, taps, bias=True)
    assert params.item() == 8 * 3 * 5 + 8
    params.backward()
    assert (c_in.grad.item(), c_out.grad.item(), taps.grad.item()) == (40.0, 16.0, 24.0)
    macs = conv_macs(c_in, c_out, taps, 10)
    assert macs.item() == 8 * 3 * 5 * 10
    assert linear_params(4, 2, bias=False) == 8


def test_layer_shape_cost_models_and_errors():
    shape = LayerShape(in_per_group=2, out_channels=3, kernel_taps=4, positions=5, bias=False)
    assert COST_MODELS.get("size")(shape) == 24
    assert COST_MODELS.get("macs")(shape) == 120
    with pytest.raises(UsageError, match="unknown cost model"):
        COST_MODELS.get("latency_on_my_toaster")
    with pytest.raises(UsageError, match="no cost model"):
        module_shape(nn.ReLU(), (1, 2))
