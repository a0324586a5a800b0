"""Contract of PIT's layer-kind registry: each searchable layer stands in for its plain layer and exports it."""

import pytest
import torch
from torch import nn

from dnas.pit.layers import PIT_LAYERS, PITConv1d, PITModule, pit_layer_for


@pytest.mark.parametrize("entry", PIT_LAYERS.entries(), ids=lambda e: e.name)
def test_pit_layer_kind_contract(entry):
    plain_type = entry.meta["plain"]
    assert issubclass(entry.factory, PITModule) and issubclass(entry.factory, plain_type)
    assert entry.factory.plain_type is plain_type and entry.help
    assert set(entry.meta["searched"]) <= {"channels", "features", "receptive field", "dilation"}
    torch.manual_seed(0)
    plain, input_shape = entry.meta["example"]()
    assert type(plain) is plain_type and pit_layer_for(plain) is entry.factory
    layer = entry.factory.from_module(plain.eval())
    x = torch.randn(3, *input_shape)
    torch.testing.assert_close(layer(x), plain(x))  # all masks on: the plain layer's output
    exported = layer.export_module()
    assert type(exported) is plain_type
    torch.testing.assert_close(exported(x), plain(x))
    searched = entry.meta["searched"]
    assert ("receptive field" in searched) == ("dilation" in searched) == isinstance(layer, PITConv1d)
    assert bool({"channels", "features"} & set(searched)) == hasattr(layer, "layer_shape")  # a costed layer


def test_subclasses_of_plain_layers_are_not_converted():
    class MyConv(nn.Conv2d):
        pass

    assert pit_layer_for(MyConv(3, 4, 3)) is None and pit_layer_for(nn.ReLU()) is None
