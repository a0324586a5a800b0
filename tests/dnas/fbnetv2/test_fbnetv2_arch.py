import pytest
import torch

from dnas.fbnetv2 import FBNetV2, LayerDef, lenet_arch_def, ofa_arch_def
from hw import systolic_latency
from search_space.ofa_mbv3 import OFAMobileNetV3Space
from utils.errors import UsageError


def test_widths_are_distinct_fractions_of_the_maximum():
    assert LayerDef("conv", 10, (0.05, 0.25, 0.3, 1.0)).widths() == [1, 2, 3, 10]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "conv", "channels": 8, "fractions": (0.0,)},
        {"kind": "conv", "channels": 8, "kernels": (4,)},
        {"kind": "linear", "channels": 8, "kernels": (3,)},
    ],
)
def test_invalid_layer_definitions_are_usage_errors(kwargs):
    with pytest.raises(UsageError):
        LayerDef(**kwargs)


@pytest.mark.parametrize("kind", ["pool", "conv"])
def test_unknown_kind_or_missing_width_is_a_usage_error(kind):
    arch_def = lenet_arch_def()
    bad = type(arch_def)(arch_def.input_shape, (LayerDef(kind), *arch_def.layers[1:]))
    with pytest.raises(UsageError):
        FBNetV2(bad)


def test_scaled_arch_def_fixes_every_choice():
    scaled = lenet_arch_def().scaled(0.25)
    model = FBNetV2(scaled)
    assert model.arch_parameters() == []
    assert [layer.widths for layer in model.searchable] == [[8], [16], [30], [21], [10]]


def test_ofa_subnet_converts_builds_and_runs():
    arch = OFAMobileNetV3Space(lr=32, ur=32).smallest()
    arch_def = ofa_arch_def(arch)
    kinds = [layer.kind for layer in arch_def.layers]
    assert kinds[0] == "conv" and kinds[-2:] == ["conv", "linear"]  # stem ... feature mix, classifier
    assert kinds.count("dwconv") == 1 + sum(arch["d"])  # the first block's and one per active layer
    assert sum(layer.avgpool for layer in arch_def.layers) == 1
    model = FBNetV2(arch_def)
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 10)
    model.get_regularization_loss().backward()
    assert all(p.grad is not None for p in model.arch_parameters())
    model.eval()
    plain = model.arch_export().eval()
    torch.testing.assert_close(model(x), plain(x), atol=1e-4, rtol=1e-4)
    assert model.reference_latency == systolic_latency(plain, (3, 32, 32), model.hardware.shape)
