import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hw import COST_MODELS, LayerShape, combine, conv_macs, conv_params, linear_params, module_shape, network_cost
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
    shape = module_shape(layer, x.shape, out.shape)
    assert COST_MODELS.get("macs")(shape) == counter.get_total_flops() // 2
    assert COST_MODELS.get("size")(shape) == sum(p.numel() for p in layer.parameters())
    assert COST_MODELS.get("params")(shape) == COST_MODELS.get("size")(shape)
    assert COST_MODELS.get("activations")(shape) == out.numel()
    assert COST_MODELS.get("peak_act")(shape) == x.numel() + out.numel()


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


def test_pooling_has_macs_but_no_parameters():
    pool = nn.AvgPool2d(3, 2, 1)
    x = torch.randn(1, 4, 7, 7)
    shape = module_shape(pool, x.shape, pool(x).shape)
    assert (shape.in_per_group, shape.out_channels, shape.kernel_taps, shape.groups) == (1, 4, 9, 4)
    assert COST_MODELS.get("params")(shape) == 0
    assert COST_MODELS.get("macs")(shape) == 4 * 9 * 16  # one per tap and output element
    assert COST_MODELS.get("latency")(shape) == 0  # the systolic array does not run it


def test_layer_shape_cost_models_and_errors():
    shape = LayerShape(in_per_group=2, out_channels=3, kernel_taps=4, positions=5, in_positions=7, bias=False)
    assert COST_MODELS.get("size")(shape) == 24
    assert COST_MODELS.get("macs")(shape) == 120
    assert COST_MODELS.get("activations")(shape) == 15
    assert COST_MODELS.get("peak_act")(shape) == 2 * 7 + 15
    with pytest.raises(UsageError, match="unknown cost model"):
        COST_MODELS.get("latency_on_my_toaster")
    with pytest.raises(UsageError, match="no layer kind for ReLU"):
        module_shape(nn.ReLU(), (1, 2), (1, 2))


def test_network_cost_sums_or_takes_the_peak():
    a = LayerShape(3, 8, 9, 16, 16)  # in 48, out 128 elements
    b = LayerShape(8, 4, 1, 4, 4)  # in 32, out 16
    assert network_cost("params", [a, b]) == 8 * 3 * 9 + 4 * 8
    assert network_cost("peak_act", [a, b]) == 48 + 128
    assert network_cost("peak_act", []) == 0
    soft = network_cost("peak_act", [a.as_tensors(), b.as_tensors()])
    assert isinstance(soft, torch.Tensor) and soft.item() == 176
    assert combine("macs", [torch.tensor(1.0), 2, torch.tensor(3.0, dtype=torch.float64)]).dtype == torch.float64


def test_soft_shapes():
    shape = LayerShape(3, 8, 9, 16, 16, bias=True)
    soft = shape.as_tensors(torch.float32)
    assert soft.is_soft and not shape.is_soft and soft.out_channels.dtype == torch.float32
    assert LayerShape(1, 6, 9, 4, 4, groups=6).out_per_group == 1
