import pytest
import torch
from torch import nn

from dnas.pit import PIT, PITBatchNorm2d, PITConv1d, PITConv2d, PITLinear
from dnas.pit.features import ConcatFeatures, ConstFeatures, FlattenFeatures, MaskerFeatures
from utils.errors import UsageError


def layer(pit, name):
    return pit.seed.get_submodule(name)


@pytest.mark.parametrize("name", ["residual", "tcn", "concat"])
def test_converted_model_computes_the_original(toys, name):
    model, shape = toys[name]
    x = torch.randn(5, *shape)
    pit = PIT(model, shape)
    assert torch.allclose(pit.eval()(x), model.eval()(x), atol=1e-6)
    assert all(not isinstance(m, PITConv2d) for m in model.modules())  # the user's model is untouched


def test_residual_block_shares_one_masker_and_features_follow_producers(toys):
    pit = PIT(*toys["residual"])
    conv0, conv1, conv2, conv3, fc = (layer(pit, n) for n in ("conv0", "conv1", "conv2", "conv3", "fc"))
    assert isinstance(conv0, PITConv2d) and isinstance(fc, PITLinear)
    assert isinstance(layer(pit, "bn0"), PITBatchNorm2d)
    assert conv2.out_masker is conv0.out_masker  # the residual addition ties them
    assert layer(pit, "bn0").out_masker is conv0.out_masker and layer(pit, "bn2").out_masker is conv0.out_masker
    assert conv1.out_masker is not conv0.out_masker and conv3.out_masker is not conv0.out_masker
    assert isinstance(conv0.in_features_calc, ConstFeatures) and conv0.in_features_calc.n == 3
    assert isinstance(conv1.in_features_calc, MaskerFeatures) and conv1.in_features_calc.masker is conv0.out_masker
    assert conv2.in_features_calc.masker is conv1.out_masker
    assert conv3.in_features_calc.masker is conv0.out_masker
    assert fc.in_features_calc.masker is conv3.out_masker  # through relu, pooling and flatten(1) of 1×1 maps
    assert conv0.out_masker.trainable and conv3.out_masker.trainable
    assert not fc.out_masker.trainable and bool(fc.out_masker.fixed.all())  # the classifier keeps every class
    assert conv0.positions == 64 and conv3.positions == 16 and fc.positions == 1


def test_flatten_and_concat_features(toys):
    tcn = PIT(*toys["tcn"])
    calc = layer(tcn, "fc").in_features_calc
    assert isinstance(calc, FlattenFeatures) and calc.positions == 16
    assert calc.inner.masker is layer(tcn, "c1").out_masker
    assert calc.features(torch.device("cpu")).item() == 64
    cat = PIT(*toys["concat"])
    calc = layer(cat, "mix").in_features_calc
    assert isinstance(calc, ConcatFeatures)
    assert [p.masker for p in calc.parts] == [layer(cat, "a").out_masker, layer(cat, "b").out_masker]
    assert isinstance(layer(cat, "fc").in_features_calc, FlattenFeatures)  # y.view(y.size(0), -1)


class WithPIT(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c0 = PITConv1d(2, 6, 5, padding=2)
        self.c1 = PITConv1d(6, 6, 3, padding=1)
        self.c2 = nn.Conv1d(6, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8, 3)

    def forward(self, x):
        return self.fc(self.c2(torch.relu(self.c1(torch.relu(self.c0(x))))).flatten(1))


def test_model_with_pit_layers_and_autoconvert():
    torch.manual_seed(0)
    model = WithPIT()
    x = torch.randn(3, 2, 8)
    pit = PIT(model, (2, 8))
    assert [type(layer(pit, n)) for n in ("c0", "c1", "c2", "fc")] == [PITConv1d, PITConv1d, PITConv1d, PITLinear]
    assert layer(pit, "c1").in_features_calc.masker is layer(pit, "c0").out_masker
    assert layer(pit, "c2").in_features_calc.masker is layer(pit, "c1").out_masker
    assert layer(pit, "c1").out_masker.trainable
    assert torch.allclose(pit(x), model(x), atol=1e-6)


def test_model_with_pit_layers_without_autoconvert():
    torch.manual_seed(0)
    model = WithPIT()
    x = torch.randn(3, 2, 8)
    pit = PIT(model, (2, 8), autoconvert_layers=False)
    assert [type(layer(pit, n)) for n in ("c0", "c1", "c2", "fc")] == [PITConv1d, PITConv1d, nn.Conv1d, nn.Linear]
    assert list(pit.searchable_layers()) == ["c0", "c1"]
    assert layer(pit, "c0").out_masker.trainable
    assert layer(pit, "c1").in_features_calc.masker is layer(pit, "c0").out_masker
    assert not layer(pit, "c1").out_masker.trainable  # read by a plain layer: its channels stay
    assert bool(layer(pit, "c1").out_masker.fixed.all())
    assert layer(pit, "c1").beta_masker.trainable
    assert torch.allclose(pit(x), model(x), atol=1e-6)


def test_exclude_names_and_types_leave_exactly_those_layers(toys):
    model, shape = toys["residual"]
    pit = PIT(model, shape, exclude_names=("conv1",))
    assert type(layer(pit, "conv1")) is nn.Conv2d
    assert {n for n, m in pit.seed.named_modules() if type(m) is nn.Conv2d} == {"conv1"}
    assert not layer(pit, "conv0").out_masker.trainable  # conv1 reads every conv0 channel
    pit = PIT(model, shape, exclude_types=(nn.Linear,))
    assert type(layer(pit, "fc")) is nn.Linear
    assert {n for n, m in pit.seed.named_modules() if isinstance(m, PITConv2d)} == {"conv0", "conv1", "conv2", "conv3"}
    assert not layer(pit, "conv3").out_masker.trainable


class Chunked(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c0 = nn.Conv2d(3, 8, 1)
        self.c1 = nn.Conv2d(4, 4, 1)
        self.c2 = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        a, b = torch.chunk(self.c0(x), 2, dim=1)
        return torch.sigmoid(self.c1(a)) + self.c2(b)


def test_unknown_ops_keep_the_channels_of_their_inputs():
    pit = PIT(Chunked(), (3, 4, 4))
    assert not pit.seed.c0.out_masker.trainable  # split by torch.chunk
    assert not pit.seed.c1.out_masker.trainable  # through a sigmoid (masked zeros would become 0.5)
    assert not pit.seed.c2.out_masker.trainable  # added to the sigmoid's output
    assert isinstance(pit.seed.c1.in_features_calc, ConstFeatures)


class Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        if x.sum() > 0:
            return self.fc(x)
        return -self.fc(x)


def test_clear_errors():
    with pytest.raises(UsageError, match="cannot trace Untraceable"):
        PIT(Untraceable(), (4,))
    with pytest.raises(UsageError, match="unknown cost model 'energy'"):
        PIT(nn.Linear(4, 2), (4,), regularizer="energy")
    with pytest.raises(UsageError, match="unknown hardware model 'toaster'"):
        PIT(nn.Linear(4, 2), (4,), regularizer="latency", hardware="toaster")
    with pytest.raises(UsageError, match="input_shape"):
        PIT(nn.Linear(4, 2), (0, 4))
    with pytest.raises(UsageError, match="no layer called conv9"):
        PIT(nn.Sequential(nn.Linear(4, 2)), (4,), exclude_names=("conv9",))
    with pytest.raises(UsageError, match="fails on an input of shape"):
        PIT(nn.Linear(4, 2), (5,))


class GatedHardSwish(nn.Module):
    """conv → h-swish (`x * relu6(x + 3) / 6`) → squeeze-excitation with a sigmoid gate → conv → h-swish → fc."""

    def __init__(self) -> None:
        super().__init__()
        self.c0 = nn.Conv2d(3, 8, 3, padding=1)
        self.reduce = nn.Conv2d(8, 4, 1)
        self.expand = nn.Conv2d(4, 8, 1)
        self.c1 = nn.Conv2d(8, 6, 1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        y = self.c0(x)
        y = y * nn.functional.relu6(y + 3.0, inplace=True) / 6.0
        y = y * torch.sigmoid(self.expand(torch.relu(self.reduce(y.mean(3, keepdim=True).mean(2, keepdim=True)))))
        z = self.c1(y)
        z = 0.5 * z * (3.0 - nn.functional.hardsigmoid(z)).mul(2)
        return self.fc(z.mean((2, 3)))


def test_hard_swish_and_squeeze_excitation_keep_their_channels_searchable():
    torch.manual_seed(0)
    pit = PIT(GatedHardSwish(), (3, 5, 5))
    assert all(layer(pit, n).out_masker.trainable for n in ("c0", "reduce", "c1"))
    assert layer(pit, "expand").out_masker is layer(pit, "c0").out_masker  # the gate multiplies c0's channels
    assert layer(pit, "reduce").in_features_calc.masker is layer(pit, "c0").out_masker  # through the means
    assert layer(pit, "fc").in_features_calc.masker is layer(pit, "c1").out_masker
    with torch.no_grad():
        layer(pit, "c0").out_masker.theta[[1, 4, 6]] = 0
        layer(pit, "reduce").out_masker.theta[2] = 0
        layer(pit, "c1").out_masker.theta[[3, 5]] = 0
    pit.eval()
    exported = pit.arch_export().eval()
    assert (exported.c0.out_channels, exported.reduce.out_channels, exported.expand.out_channels) == (5, 3, 5)
    x = torch.randn(4, 3, 5, 5)
    torch.testing.assert_close(exported(x), pit(x), atol=1e-6, rtol=0)


class Shifted(nn.Module):
    """A shifted tensor read by a conv, scaled and shifted residual operands, a number divided by a tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.c2 = nn.Conv2d(3, 4, 1)
        self.c3 = nn.Conv2d(4, 6, 1)
        self.c4 = nn.Conv2d(3, 6, 1)
        self.c5 = nn.Conv2d(3, 6, 1)
        self.c6 = nn.Conv2d(6, 6, 1)
        self.c7 = nn.Conv2d(6, 2, 1)

    def forward(self, x):
        y = self.c3(self.c2(x) + 1.0) + self.c4(x) / 2.0  # c2's pruned zeros would reach c3 as ones
        return self.c7(y - self.c6(2.0 / self.c5(x)))


def test_shifted_values_read_by_a_layer_and_unknown_divisions_freeze_channels():
    pit = PIT(Shifted(), (3, 4, 4))
    assert not layer(pit, "c2").out_masker.trainable
    assert layer(pit, "c3").out_masker is layer(pit, "c4").out_masker and layer(pit, "c3").out_masker.trainable
    assert layer(pit, "c6").out_masker is layer(pit, "c3").out_masker
    assert not layer(pit, "c5").out_masker.trainable  # 2 / x: a pruned zero would become infinite
    assert not layer(pit, "c7").out_masker.trainable  # the output
