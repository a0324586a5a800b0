import torch
from torch import nn

from hw import SystolicArray, layer_shapes, measure_counts, model_cost


def small_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # 8·27 + 8 = 224 params, 8·27·64 = 13824 MACs
        nn.BatchNorm2d(8),  # 16 params
        nn.ReLU(),
        nn.MaxPool2d(2),  # 8 ch × 4 taps × 16 positions = 512 MACs as a pooling window
        nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),  # 72 params, 72·16 = 1152 MACs
        nn.Flatten(),
        nn.Linear(128, 10),  # 1290 params, 1280 MACs
    )


def test_measure_counts_gives_the_outer_search_definitions():
    counts = measure_counts(small_net(), (3, 8, 8), (8, 8))
    assert counts.params == 224 + 16 + 72 + 1290
    assert counts.macs == 13824 + 1152 + 1280  # FlopCounterMode: convolutions and linear layers only
    assert counts.activations == 512 + 512 + 128 + 128 + 128 + 10  # conv, BN, max pool, conv, flatten, linear
    assert counts.latency == 4 * 1 * 64 + 8 * 2 * 1 * 16 + 16 * 2  # on an 8 × 8 array
    assert counts.peak_act is None


def test_model_cost_counts_the_layers_of_the_kinds_asked_for():
    net = small_net()
    assert model_cost("params", net, (3, 8, 8)) == 224 + 72 + 1290  # batch norm is no layer kind
    assert model_cost("macs", net, (3, 8, 8)) == 13824 + 512 + 1152 + 1280
    assert model_cost("macs", net, (3, 8, 8), kinds=("conv", "linear")) == 13824 + 1152 + 1280
    assert model_cost("peak_act", net, (3, 8, 8)) == 3 * 64 + 8 * 64  # the first convolution's input and output
    assert model_cost("latency", net, (3, 8, 8), hardware=SystolicArray(8, 8)) == 4 * 64 + 8 * 2 * 16 + 16 * 2
    soft = model_cost("latency", net, (3, 8, 8), hardware=SystolicArray(8, 8), soft=True)
    assert isinstance(soft, torch.Tensor) and soft.dtype == torch.float64
    assert len(layer_shapes(net, (3, 8, 8), kinds=("pool",))) == 1
