import pytest
import torch
from torch import nn

from dnas.fbnetv2 import FBNetV2, lenet_arch_def
from hw import SystolicArray, systolic_latency


def set_choices(model: FBNetV2, choices: list[tuple[int, int]]) -> None:
    with torch.no_grad():
        for layer, (width, kernel) in zip(model.searchable, choices, strict=True):
            for choice, index in ((layer.channels, width), (layer.kernels, kernel)):
                choice.logits.zero_()
                choice.logits[index] = 1.0


def warm_up_batch_norms(model: nn.Module) -> None:
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 3, 8, 8))


@pytest.mark.parametrize("seed", range(4))
def test_one_hot_masked_model_equals_extracted_winner(mixed_arch_def, seed):
    torch.manual_seed(seed)
    model = FBNetV2(mixed_arch_def)
    warm_up_batch_norms(model)  # running statistics differ from their initial values
    options = [(len(layer.widths), len(layer.spec.kernels)) for layer in model.searchable]
    choices = [tuple(int(torch.randint(n, ())) for n in pair) for pair in options]
    set_choices(model, choices)
    assert model.choices() == choices
    model.eval()
    plain = model.arch_export().eval()
    x = torch.randn(5, 3, 8, 8)
    torch.testing.assert_close(model(x), plain(x), atol=1e-5, rtol=1e-5)
    assert model.get_latency() == systolic_latency(plain, (3, 8, 8), model.hardware.shape)


def test_exported_layers_are_genuinely_smaller():
    model = FBNetV2(lenet_arch_def(), SystolicArray(8, 8))
    set_choices(model, [(0, 0), (1, 1), (2, 0), (0, 0), (0, 0)])
    plain = model.arch_export()
    convs = [m for m in plain if isinstance(m, nn.Conv2d)]
    linears = [m for m in plain if isinstance(m, nn.Linear)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(3, 8, (3, 3)), (8, 32, (5, 5))]
    assert [(fc.in_features, fc.out_features) for fc in linears] == [(32 * 2 * 2, 90), (90, 21), (21, 10)]
    full = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in plain.parameters()) < full
    assert model.get_size() == sum(p.numel() for m in (*convs, *linears) for p in m.parameters())


def test_untrained_choices_export_the_maximal_network(mixed_arch_def):
    model = FBNetV2(mixed_arch_def)
    assert model.get_latency() == model.reference_latency
    assert all(layer.channels.index() == len(layer.widths) - 1 for layer in model.searchable)


def test_training_mode_samples_soft_masks():
    torch.manual_seed(0)
    model = FBNetV2(lenet_arch_def())
    layer = model.searchable[0]
    weights = layer.channels.weights(1.0)
    assert torch.isclose(weights.sum(), torch.tensor(1.0)) and (weights > 0).all()
    mask = layer.out_mask(torch.ones(3), 1.0)
    torch.testing.assert_close(mask[0], torch.tensor(1.0))
    assert (mask[1:] <= mask[:-1] + 1e-6).all()  # nested masks: a prefix is kept more often
    model.eval()
    assert (layer.out_mask(torch.ones(3), 1.0) == 1.0).all()  # the arg-max: the widest, untrained
