import pytest
import torch
from torch import nn

from dnas.pit import PIT
from dnas.pit.masks import Masker


def maskers(pit):
    return [m for m in pit.modules() if isinstance(m, Masker)]


def test_single_layer_initial_costs():
    pit = PIT(nn.Conv1d(3, 8, 9, padding=4), (3, 32), regularizer="size")
    assert pit.get_size() == 8 * 3 * 9 + 8 == 224
    assert pit.get_macs() == 8 * 3 * 9 * 32 == 6912
    assert pit.get_regularization_loss().item() == 224
    assert PIT(nn.Conv1d(3, 8, 9, padding=4), (3, 32), regularizer="macs").get_regularization_loss().item() == 6912


def test_full_model_initial_costs(toys):
    tcn = PIT(*toys["tcn"])
    # c0 (6·2·9 + 6), c1 (4·6·5 + 4), fc (64·3 + 3)
    assert tcn.get_size() == 114 + 124 + 195 == 433
    assert tcn.get_macs() == 6 * 2 * 9 * 16 + 4 * 6 * 5 * 16 + 64 * 3 == 3840
    residual = PIT(*toys["residual"], regularizer="macs")
    assert residual.get_size() == 224 + 576 + 576 + 1168 + 68 == 2612
    assert residual.get_macs() == 13824 + 36864 + 36864 + 18432 + 64 == 106048
    assert residual.get_regularization_loss().item() == 106048


def test_costs_follow_the_masks(toys):
    tcn = PIT(*toys["tcn"])
    with torch.no_grad():
        tcn.seed.c0.out_masker.theta[3:] = 0  # 3 channels left: c0 and c1's inputs shrink
        tcn.seed.c1.beta_masker.theta[3:] = 0  # c1 keeps 3 of its 5 taps
    assert tcn.get_size() == (3 * 2 * 9 + 3) + (4 * 3 * 3 + 4) + 195
    assert tcn.get_regularization_loss().item() == tcn.get_size()


@pytest.mark.parametrize("regularizer", ["size", "macs"])
def test_regularizer_gradients_reach_every_trainable_mask(toys, regularizer):
    pit = PIT(*toys["tcn"], regularizer=regularizer)
    pit.get_regularization_loss().backward()
    trainable = [m for m in maskers(pit) if m.trainable]
    assert len(trainable) == 6  # alpha of c0 and c1, beta and gamma of c0 and c1 (fc's alpha is fixed)
    for masker in trainable:
        grad = masker.theta.grad[~masker.fixed]
        assert grad.numel() and (grad > 0).all()


@pytest.mark.parametrize("regularizer", ["size", "macs"])
def test_regularizer_alone_drives_trainable_masks_to_zero(toys, regularizer):
    pit = PIT(*toys["residual" if regularizer == "macs" else "tcn"], regularizer=regularizer)
    opt = torch.optim.Adam(pit.arch_parameters(), lr=0.05)
    for _ in range(30):
        opt.zero_grad()
        pit.get_regularization_loss().backward()
        opt.step()
    for masker in maskers(pit):
        values = masker.values()
        assert (values[masker.fixed] == 1).all()
        if masker.trainable:
            assert (values[~masker.fixed] == 0).all()
    assert not pit.seed.fc.out_masker.trainable and (pit.seed.fc.out_masker.mask() == 1).all()
