"""Contract tests of the hw registries: every cost model, hardware model and layer kind, present and future."""

import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hw import (
    COST_MODELS,
    HARDWARE_MODELS,
    LAYER_KINDS,
    HardwareModel,
    LayerShape,
    create_hardware,
    layer_kind,
    layer_shapes,
    module_shape,
    network_cost,
)
from hw.costs import REDUCTIONS


def example_shapes() -> list[LayerShape]:
    """The exact shape of every layer kind's example, plus a few hand-made ones."""
    shapes = [layer_shapes(*e.meta["example"]())[0] for e in LAYER_KINDS.entries()]
    return [*shapes, LayerShape(27, 20, 9, 16, 36, bias=True), LayerShape(1, 12, 25, 4, 16, groups=12)]


def soft(shape: LayerShape) -> LayerShape:
    """`shape` with float32 counts that require gradients."""
    return shape.as_tensors(torch.float32)


@pytest.mark.parametrize("entry", COST_MODELS.entries(), ids=lambda e: e.name)
def test_cost_model_contract(entry):
    assert isinstance(entry.meta["unit"], str) and entry.help
    assert entry.meta["reduce"] in REDUCTIONS and isinstance(entry.meta["smooth"], bool)
    assert network_cost(entry.name, []) == 0
    for shape in example_shapes():
        exact = entry.factory(shape)
        assert not isinstance(exact, torch.Tensor) and math.isfinite(exact) and exact >= 0
        value = entry.factory(soft(shape))
        assert torch.isfinite(torch.as_tensor(value))
        if not entry.meta["smooth"]:
            assert float(value) == pytest.approx(exact, rel=1e-6)  # the tensor form is exact
    channels = torch.tensor([27.0, 20.0], requires_grad=True)
    entry.factory(LayerShape(channels[0], channels[1], 9, 16, 36)).backward()
    assert channels.grad.abs().sum() > 0  # differentiable in soft channel counts


@pytest.mark.parametrize("entry", HARDWARE_MODELS.entries(), ids=lambda e: e.name)
def test_hardware_model_contract(entry):
    assert isinstance(entry.meta["unit"], str) and entry.help
    hardware = create_hardware(entry.name)  # buildable with its defaults
    assert isinstance(hardware, HardwareModel)
    for shape in example_shapes():
        exact = hardware.layer_latency(shape)
        assert not isinstance(exact, torch.Tensor) and math.isfinite(exact) and exact >= 0
        assert hardware.layer_latency(shape, batch=2) >= exact
        smooth = hardware.layer_latency(soft(shape))
        assert torch.isfinite(torch.as_tensor(smooth)) and float(smooth) >= 0
    channels = torch.tensor([27.0, 20.0], requires_grad=True)
    hardware.layer_latency(LayerShape(channels[0], channels[1], 9, 16, 36)).backward()
    assert torch.isfinite(channels.grad).all() and channels.grad.abs().sum() > 0
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 36, 4))
    total = sum(hardware.layer_latency(s) for s in layer_shapes(model, (3, 8, 8)))
    assert hardware.latency(model, (3, 8, 8)) == total  # a network's latency is its layers'


@pytest.mark.parametrize("entry", LAYER_KINDS.entries(), ids=lambda e: e.name)
def test_layer_kind_contract(entry):
    assert entry.help and entry.meta["modules"]
    assert all(issubclass(m, nn.Module) for m in entry.meta["modules"])
    module, input_shape = entry.meta["example"]()
    assert isinstance(module, entry.meta["modules"]) and layer_kind(module) == entry.name
    x = torch.randn(1, *input_shape)
    with FlopCounterMode(display=False) as counter:
        out = module(x)
    shape = module_shape(module, x.shape, out.shape)
    assert COST_MODELS.get("params")(shape) == sum(p.numel() for p in module.parameters())
    if shape.weighted:
        assert COST_MODELS.get("macs")(shape) == counter.get_total_flops() // 2
    assert COST_MODELS.get("activations")(shape) == out.numel()
    assert COST_MODELS.get("peak_act")(shape) == x.numel() + out.numel()


def test_a_registered_hardware_model_is_a_latency_for_every_cost_user():
    class MacUnits(HardwareModel):
        """`units` multiply-accumulate units, one MAC each per cycle."""

        def __init__(self, units: int = 4) -> None:
            self.units = units

        def layer_latency(self, layer, batch=1):
            return COST_MODELS.get("macs")(layer) * batch / self.units

    with HARDWARE_MODELS.register_temporarily("mac_units", MacUnits, unit="cycles"):
        test_hardware_model_contract(HARDWARE_MODELS.entry("mac_units"))
        shape = LayerShape(3, 8, 9, 16, 16)
        assert COST_MODELS.get("latency")(shape, create_hardware("mac_units", units=2)) == 8 * 27 * 16 / 2
    assert "mac_units" not in HARDWARE_MODELS
