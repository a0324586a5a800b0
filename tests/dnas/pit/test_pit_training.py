import copy

import pytest
import torch
import torch.nn.functional as F

from dnas.pit import PIT


def one_step(pit, loss_fn, x, y, strength):
    before = copy.deepcopy(pit.state_dict())
    opt = torch.optim.Adam(pit.parameters(), lr=0.01)
    opt.zero_grad()
    (loss_fn(pit(x), y) + strength * pit.get_regularization_loss()).backward()
    opt.step()
    after = pit.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    return {k for k in changed if "masker" in k}, {k for k in changed if "masker" not in k}


@pytest.mark.parametrize("regularizer", ["size", "macs"])
def test_task_loss_plus_regularizer_changes_weights_and_masks(toys, regularizer):
    model, shape = toys["residual"]
    pit = PIT(model, shape, regularizer=regularizer)
    x, y = torch.randn(8, *shape), torch.randint(0, 4, (8,))
    masks, weights = one_step(pit, F.cross_entropy, x, y, 1e-4)
    assert {"seed.conv0.weight", "seed.conv3.weight", "seed.fc.weight"} <= weights
    assert any(k.startswith("seed.conv0.out_masker") for k in masks)
    assert any(k.startswith("seed.conv1.out_masker") for k in masks)


@pytest.mark.parametrize("regularizer", ["size", "macs"])
def test_binary_cross_entropy_with_1d_search(regularizer):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv1d(2, 6, 9, padding=4), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(6 * 12, 1)
    )
    pit = PIT(model, (2, 12), regularizer=regularizer)
    x, y = torch.randn(8, 2, 12), torch.randint(0, 2, (8, 1)).float()
    masks, weights = one_step(pit, F.binary_cross_entropy_with_logits, x, y, 1e-4)
    assert {"seed.0.weight", "seed.3.weight"} <= weights
    assert {"seed.0.out_masker.theta", "seed.0.beta_masker.theta", "seed.0.gamma_masker.theta"} <= masks
