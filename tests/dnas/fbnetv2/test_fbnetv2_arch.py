import pytest

from dnas.fbnetv2 import FBNetV2, LayerDef, lenet_arch_def
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
