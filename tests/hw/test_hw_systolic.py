import math

import pytest
import torch
from torch import nn

from hw import (
    COST_MODELS,
    HARDWARE_MODELS,
    LayerShape,
    SystolicArray,
    conv_runtime,
    module_shape,
    smooth_ceil,
    systolic_latency,
)
from utils.errors import UsageError


def module_runtime(module, in_shape, out_shape, array):
    return SystolicArray(*array).layer_latency(module_shape(module, in_shape, out_shape))


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        ((3, 16, 9, 64), {"array": (8, 8)}, 4 * 2 * 64),  # ceil(27 / 8) · ceil(16 / 8) · 8·8
        ((16, 33, 1, 10), {"array": (16, 32), "batch": 2}, 1 * 2 * 10 * 2),
        ((1, 1, 9, 36), {"array": (8, 8), "groups": 8}, 8 * 2 * 1 * 36),  # depthwise, 8 channels
        ((64, 64, 9, 1), {"array": (32, 32)}, 18 * 2),
    ],
)
def test_runtime_formula_on_hand_computed_cases(args, kwargs, expected):
    assert conv_runtime(*args, **kwargs) == expected


def test_module_runtime_handles_depthwise_and_linear():
    assert module_runtime(nn.Conv2d(8, 8, 3, groups=8), (1, 8, 8, 8), (1, 8, 6, 6), (8, 8)) == 8 * 2 * 1 * 36
    assert (
        module_runtime(nn.Conv2d(8, 12, 3, groups=4), (1, 8, 7, 7), (1, 12, 5, 5), (4, 2)) == 4 * 5 * 2 * 25
    )  # ceil(2·9 / 4) · ceil(3 / 2)
    assert module_runtime(nn.Linear(20, 7), (1, 20), (1, 7), (8, 4)) == 3 * 2
    assert SystolicArray(8, 8).layer_latency(LayerShape(8, 8, 9, 36, 36), batch=3) == 3 * 9 * 1 * 36
    with pytest.raises(UsageError, match="no layer kind for BatchNorm2d"):
        module_runtime(nn.BatchNorm2d(3), (1, 3, 4, 4), (1, 3, 4, 4), (8, 8))


def test_latency_is_not_monotonic_in_channels():
    s1 = 8
    runtime = [conv_runtime(c, 8, 1, 1, (s1, 8)) for c in range(1, 2 * s1 + 2)]
    assert runtime[s1] > runtime[s1 - 1]  # c·k1·k2 = s1 + 1 costs more than s1
    assert len(set(runtime[:s1])) == 1  # 1 … s1 channels all cost the same
    # more channels, same latency, on a whole layer
    assert systolic_latency(nn.Conv2d(8, 5, 1), (8, 4, 4), (8, 8)) == systolic_latency(
        nn.Conv2d(8, 8, 1), (8, 4, 4), (8, 8)
    )
    # and a kernel of 3 on 8 inputs (72 = 9 · 8 taps) beats one on 9 inputs (81 → 11 tiles)
    assert systolic_latency(nn.Conv2d(9, 8, 3), (9, 5, 5), (8, 8)) > systolic_latency(
        nn.Conv2d(8, 8, 3), (8, 5, 5), (8, 8)
    )


def test_model_latency_is_the_sum_over_layers():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(128, 10),
    )
    hand = 4 * 1 * 64 + 8 * 2 * 1 * 64 + 16 * 2 * 1  # conv, depthwise, linear on an 8 × 8 array
    assert systolic_latency(model, (3, 8, 8), (8, 8)) == hand
    assert systolic_latency(model, (3, 8, 8), (8, 8), batch=3) == 3 * hand
    assert HARDWARE_MODELS.create("systolic", rows=8, cols=8).latency(model, (3, 8, 8)) == hand
    assert model.training  # the mode is restored


def test_smooth_ceiling_approaches_ceil_as_temperature_grows():
    x = torch.linspace(0.01, 6.0, 3000)
    x = x[(x - x.round()).abs() > 0.05]  # the steps themselves are half taken
    errors = [float((smooth_ceil(x, t, 6) - torch.ceil(x)).abs().max()) for t in (5.0, 20.0, 80.0, 320.0)]
    assert errors == sorted(errors, reverse=True) and errors[0] > errors[-1]
    assert errors[-1] < 1e-3
    mean = [float((smooth_ceil(x, t, 6) - torch.ceil(x)).abs().mean()) for t in (5.0, 80.0)]
    assert mean[1] < mean[0]


def test_smooth_ceiling_has_gradients_between_steps():
    x = torch.tensor([0.5, 1.5, 2.9, 3.1], requires_grad=True)
    smooth_ceil(x, 10.0, 4).sum().backward()
    assert (x.grad > 0).all()


def test_latency_cost_model_is_registered_and_differentiable():
    assert COST_MODELS.get("latency")(LayerShape(9, 20, 9, 4, 4)) == math.ceil(81 / 16) * 2 * 4
    assert COST_MODELS.get("latency")(LayerShape(9, 20, 9, 4, 4), SystolicArray(8, 8)) == 11 * 3 * 4
    channels = torch.tensor(9.5, requires_grad=True)
    value = COST_MODELS.get("latency")(LayerShape(channels, 20, 9, 4, 4))
    value.backward()
    assert channels.grad != 0


def test_soft_depthwise_latency_is_linear_in_its_channels():
    array = SystolicArray(8, 8, temperature=50.0)
    channels = torch.tensor(6.0, requires_grad=True)
    value = array.layer_latency(LayerShape(1, channels, 9, 16, 16, groups=channels))
    value.backward()  # 6 groups of ceil(9 / 8) · ceil(1 / 8) = 2 tiles, 16 positions each
    assert value.item() == pytest.approx(6 * 2 * 1 * 16, rel=1e-2)
    assert channels.grad.item() == pytest.approx(2 * 16, rel=1e-2)


def test_invalid_array_is_a_usage_error():
    with pytest.raises(UsageError):
        SystolicArray(0, 8)
