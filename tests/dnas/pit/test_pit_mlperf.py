import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dnas.models import TINY_MODELS, create_tiny_model, list_tiny_models
from dnas.pit import PIT, PITConv2d, PITLinear
from dnas.pit.masks import Masker

# Reference MACs and parameters of the MLPerf Tiny models (conv / linear layers; batch norms excluded).
REFERENCE = {e.name: (e.meta["macs"], e.meta["params"]) for e in TINY_MODELS.entries()}


def test_registry_lists_the_four_models():
    assert sorted(list_tiny_models()) == ["autoencoder", "dscnn", "mobilenet_v1", "resnet8"]
    assert REFERENCE["resnet8"] == (12_501_632, 77_466)


@pytest.mark.parametrize("name", list_tiny_models())
def test_tiny_model_converts_trains_and_exports(name):
    torch.manual_seed(0)
    model = create_tiny_model(name)
    pit = PIT(model, model.input_shape, regularizer="macs")
    assert (pit.get_macs(), pit.get_size()) == REFERENCE[name]
    assert any(isinstance(m, PITConv2d | PITLinear) and m.out_masker.trainable for m in pit.modules())
    x = torch.randn(4, *model.input_shape)
    assert torch.allclose(pit.eval()(x), model.eval()(x), atol=1e-5)
    pit.train()
    opt = torch.optim.Adam(pit.parameters(), lr=0.05)
    for _ in range(2):
        out = pit(x)
        task = F.mse_loss(out, x) if name == "autoencoder" else F.cross_entropy(out, torch.zeros(4, dtype=torch.long))
        opt.zero_grad()
        (task + 1e-3 * pit.get_regularization_loss() / REFERENCE[name][0]).backward()
        opt.step()
    with torch.no_grad():  # prune a random third of every trainable mask, then export
        for masker in (m for m in pit.modules() if isinstance(m, Masker) and m.trainable):
            masker.theta[torch.rand(masker.theta.shape) < 0.3] = 0
    exported = pit.arch_export()
    pit.eval()
    exported.eval()
    counted = (nn.Conv1d, nn.Conv2d, nn.Linear)
    assert (
        sum(p.numel() for m in exported.modules() if isinstance(m, counted) for p in m.parameters()) == pit.get_size()
    )
    assert pit.get_size() < REFERENCE[name][1]
    assert torch.allclose(exported(x), pit(x), atol=1e-5)
