"""Contract of FBNetV2's layer-kind registry: each kind searches what it declares, exports what it computes, and
its expected cost under every `hw` cost model is the cost of its export."""

import pytest
import torch

from dnas.fbnetv2 import LAYER_TYPES, ArchDef, FBNetV2, LayerDef
from hw import COST_MODELS, model_cost


def chain(kind: str, searches: tuple[str, ...]) -> ArchDef:
    kernels = (1, 3) if "kernel" in searches else (1,)
    return ArchDef((3, 6, 6), (LayerDef(kind, 8, (0.5, 1.0), kernels), LayerDef("linear", 4, act=False)))


@pytest.mark.parametrize("entry", LAYER_TYPES.entries(), ids=lambda e: e.name)
def test_fbnetv2_layer_kind_contract(entry):
    searches = entry.meta["searches"]
    assert set(searches) <= {"width", "kernel"} and entry.help
    torch.manual_seed(0)
    arch_def = chain(entry.name, searches)
    model = FBNetV2(arch_def)
    assert len(model.arch_parameters()) == len(searches)  # one choice per searched property
    with torch.no_grad():
        for p in model.arch_parameters():
            p.zero_()
            p[0] = 30.0  # the smallest option
    model.eval()
    plain = model.arch_export().eval()
    x = torch.randn(2, *arch_def.input_shape)
    torch.testing.assert_close(model(x), plain(x), atol=1e-5, rtol=1e-5)
    for name in COST_MODELS.names(aliases=False):
        reference = model_cost(name, plain, arch_def.input_shape, model.cost_kinds, model.hardware, soft=True)
        with torch.no_grad():
            assert float(model.cost(name)) == pytest.approx(float(reference), rel=1e-4)
