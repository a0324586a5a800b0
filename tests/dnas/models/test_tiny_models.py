"""Contract of the MLPerf Tiny registry: every model builds, runs, and has its reference costs."""

import pytest
import torch

from dnas.models import TINY_MODELS, create_tiny_model
from hw import model_cost


@pytest.mark.parametrize("entry", TINY_MODELS.entries(), ids=lambda e: e.name)
def test_tiny_model_contract(entry):
    assert entry.meta["task"] and entry.help
    torch.manual_seed(0)
    model = create_tiny_model(entry.name).eval()
    shape = model.input_shape
    out = model(torch.randn(2, *shape))
    assert out.shape[0] == 2 and torch.isfinite(out).all()
    kinds = ("conv", "linear")
    assert model_cost("macs", model, shape, kinds) == entry.meta["macs"]
    assert model_cost("params", model, shape, kinds) == entry.meta["params"]
