import pytest
import torch

from dnas.fbnetv2 import FBNetV2, lenet_arch_def
from hw import SystolicArray


def test_expected_latency_gradient_reaches_every_architecture_parameter(mixed_arch_def):
    model = FBNetV2(mixed_arch_def, SystolicArray(8, 8, temperature=5.0))
    with torch.no_grad():
        for p in model.arch_parameters():
            p.normal_()
    model.get_regularization_loss().backward()
    params = model.arch_parameters()
    assert len(params) == 6  # widths and kernels of both convs, the depthwise kernel, the hidden linear width
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
    assert all(p.grad is None for p in model.net_parameters())


def test_regulariser_prefers_smaller_choices():
    model = FBNetV2(lenet_arch_def(), SystolicArray(8, 8))
    uniform = model.get_regularization_loss().item()
    with torch.no_grad():
        for layer in model.searchable:
            if len(layer.widths) > 1:
                layer.channels.logits.copy_(torch.tensor([8.0, 0.0, 0.0, 0.0]))
    assert model.get_regularization_loss().item() < uniform < 1.0


@pytest.mark.parametrize("array", [(8, 8), (32, 32)])
def test_expected_latency_of_one_hot_choices_tracks_the_exact_latency(array):
    model = FBNetV2(lenet_arch_def(), SystolicArray(*array, temperature=50.0))
    with torch.no_grad():
        for layer in model.searchable:
            for choice in (layer.channels, layer.kernels):
                choice.logits[0] += 30.0  # the smallest option, almost surely
    exact = model.get_latency()
    assert exact < model.reference_latency
    # the smooth ceiling is exact between steps and half a step high on a multiple of the array size
    assert exact <= model.cost("latency").item() <= 1.6 * exact
