import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dnas.pit import PIT
from dnas.pit.masks import Masker

COUNTED = (nn.Conv1d, nn.Conv2d, nn.Linear)


def counted_params(module):
    return sum(p.numel() for m in module.modules() if isinstance(m, COUNTED) for p in m.parameters())


def randomise_masks(pit, seed, p=0.4):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for masker in (m for m in pit.modules() if isinstance(m, Masker)):
            masker.theta[torch.rand(masker.theta.shape, generator=generator) < p] = 0.0


def train_a_little(pit, shape, n_out):
    opt = torch.optim.SGD(pit.net_parameters(), lr=0.01)
    for _ in range(3):
        x = torch.randn(8, *shape)
        loss = F.cross_entropy(pit(x), torch.randint(0, n_out, (8,)))
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("name", ["residual", "tcn", "concat"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_export_equals_masked_model_and_size(toys, name, seed):
    model, shape = toys[name]
    pit = PIT(model, shape)
    train_a_little(pit, shape, pit(torch.randn(2, *shape)).shape[1])
    randomise_masks(pit, seed)
    exported = pit.arch_export()
    assert not any(isinstance(m, Masker) for m in exported.modules())
    assert counted_params(exported) == pit.get_size() < counted_params(model)
    x = torch.randn(6, *shape)
    pit.eval()
    exported.eval()
    assert torch.allclose(exported(x), pit(x), atol=1e-5)
    summary = pit.arch_summary()
    assert summary["params"] == pit.get_size() and summary["macs"] == pit.get_macs()


def test_exported_batch_norm_is_pruned(toys):
    pit = PIT(*toys["residual"])
    with torch.no_grad():
        pit.seed.conv0.out_masker.theta[[2, 5]] = 0
    exported = pit.arch_export()
    assert exported.conv0.out_channels == exported.conv2.out_channels == exported.conv3.in_channels == 6
    assert exported.bn0.num_features == exported.bn2.num_features == 6
    assert exported.bn1.num_features == 8


def test_dilation_and_receptive_field_become_a_smaller_conv():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 4, 9, padding=4), nn.ReLU(), nn.Conv1d(4, 3, 9, padding=4))
    pit = PIT(model, (2, 30))
    with torch.no_grad():
        pit.seed.get_submodule("0").gamma_masker.theta[:2] = 0  # dilation 4: taps 0, 4, 8 from the causal end
        pit.seed.get_submodule("2").beta_masker.theta[5:] = 0  # the 5 newest taps
    exported = pit.arch_export()
    first = exported.get_submodule("0")
    assert (first.kernel_size, first.dilation, first.padding) == ((3,), (4,), (4,))
    assert torch.equal(first.weight, pit.seed.get_submodule("0").weight[..., [0, 4, 8]])
    pad, last = exported.get_submodule("2")  # the kept taps sit on the causal end: the left padding shrinks
    assert isinstance(pad, nn.ConstantPad1d) and pad.padding == (0, 4)
    assert last.kernel_size == (5,)
    x = torch.randn(3, 2, 30)
    assert torch.allclose(exported(x), pit(x), atol=1e-5)
    assert pit.arch_summary()["layers"][0] == {
        "name": "0", "type": "Conv1d", "in": 2, "out": 4, "kernel": [3], "dilation": [4]
    }  # fmt: skip
