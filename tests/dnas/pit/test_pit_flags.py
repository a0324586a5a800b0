import pytest
import torch

from dnas.pit import PIT, PITConv1d


def grads(pit, kind):
    layers = [m for m in pit.modules() if isinstance(m, PITConv1d)]
    return [getattr(layer, f"{kind}_masker").theta.grad for layer in layers]


@pytest.mark.parametrize(
    ("flag", "frozen"), [("train_channels", "out"), ("train_rf", "beta"), ("train_dilation", "gamma")]
)
def test_disabled_masks_get_no_gradient(toys, flag, frozen):
    pit = PIT(*toys["tcn"], **{flag: False})
    x = torch.randn(4, 2, 16)
    (pit(x).square().mean() + pit.get_regularization_loss()).backward()
    assert all(g is None or not g.any() for g in grads(pit, frozen))
    for other in {"out", "beta", "gamma"} - {frozen}:
        assert all(g is not None and g.any() for g in grads(pit, other))
    assert all(p.grad is None for p in pit.arch_parameters() if not p.requires_grad)
