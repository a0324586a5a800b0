"""The refined-network format: exports of PIT and FBNetV2Graph saved, loaded weights-only and rebuilt exactly."""

import re

import pytest
import torch
from torch import nn

from dnas.fbnetv2 import FBNetV2Graph
from dnas.pit import PIT
from dnas.refined import apply_specs, load_refined, module_specs, rebuild, refined_record, save_refined
from tests.dnas.pit.ofa_subnets import (  # noqa: F401 (an autouse fixture)
    SPACE,
    build,
    flop_macs,
    input_shape,
    one_torch_thread,
)
from utils.errors import UsageError

ARCH = {"ks": [7, 3, 5, 3] * 5, "e": [6, 3, 4, 3] * 5, "d": [2, 4, 2, 2, 3], "r": 32}
SHAPE = input_shape(ARCH)


def pruned_pit(net):
    pit = PIT(net, SHAPE, regularizer="macs")
    with torch.no_grad():
        pit.seed.get_submodule("first_conv.conv").out_masker.theta[[3, 4]] = 0
        pit.seed.get_submodule("blocks.3.conv.point_linear.conv").out_masker.theta[1:20] = 0  # residual group
        pit.seed.get_submodule("blocks.3.conv.depth_conv.se.fc.reduce").out_masker.theta[[1, 2]] = 0
    return pit


def narrowed_graph(net):
    engine = FBNetV2Graph(net, SHAPE)
    with torch.no_grad():
        for p in engine.arch_parameters():
            p[0] = 1.0  # the narrowest widths, the smallest kernels
    return engine


@pytest.fixture(scope="module", params=[pruned_pit, narrowed_graph], ids=["pit", "fbnetv2"])
def exported(request):
    return request.param(build(ARCH)).eval().arch_export().eval()


def test_save_load_rebuild_gives_the_export(exported, tmp_path):
    path = save_refined(tmp_path / "net.pt", refined_record(exported, arch=ARCH, engine="test"))
    record = load_refined(path)
    assert record["arch"] == ARCH and record["engine"] == "test" and record["format"] == "refined-v1"
    rebuilt = rebuild(SPACE.build_network(ARCH, 10), record).eval()
    assert type(rebuilt).__name__ == "MobileNetV3"
    x = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), exported(x), atol=1e-6, rtol=0)
    assert flop_macs(rebuilt, SHAPE) == flop_macs(exported, SHAPE) < flop_macs(build(ARCH), SHAPE)


def test_specs_hold_plain_values_only(exported):
    specs = module_specs(exported)
    conv = specs["blocks.1.conv.depth_conv.conv"]
    assert conv["type"] == "Conv2d" and conv["groups"] == conv["in_channels"] == conv["out_channels"]
    assert set(conv) == {"type", "in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
                         "groups", "bias", "padding_mode"}  # fmt: skip
    features = exported.get_submodule("feature_mix_layer.conv").out_channels
    assert specs["classifier.linear"] == {"type": "Linear", "in_features": features, "out_features": 10, "bias": True}

    def plain(value):
        return (
            value is None
            or isinstance(value, bool | int | float | str)
            or (isinstance(value, list) and all(map(plain, value)))
        )

    assert all(plain(v) for spec in specs.values() for v in spec.values())


class TCN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c0 = nn.Conv1d(2, 6, 9, padding=4)
        self.bn = nn.BatchNorm1d(6)
        self.fc = nn.Linear(6 * 16, 3)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.bn(self.c0(x))), 1))


def test_pit_shifted_windows_round_trip(tmp_path):
    torch.manual_seed(0)
    pit = PIT(TCN(), (2, 16))
    with torch.no_grad():
        pit.seed.c0.beta_masker.theta[3:] = 0  # the 3 newest taps: a left padding of its own
        pit.seed.c0.out_masker.theta[[2, 5]] = 0
    exported = pit.eval().arch_export().eval()
    assert [type(m).__name__ for m in exported.c0] == ["ConstantPad1d", "Conv1d"]
    save_refined(tmp_path / "tcn.pt", refined_record(exported))
    rebuilt = rebuild(TCN(), load_refined(tmp_path / "tcn.pt")).eval()
    x = torch.randn(4, 2, 16)
    torch.testing.assert_close(rebuilt(x), exported(x), atol=1e-6, rtol=0)


def test_unreadable_and_foreign_files_are_one_line_usage_errors(tmp_path):
    path = tmp_path / "net.pt"
    name = re.escape(str(path))
    with pytest.raises(UsageError, match=f"refined network file not found: {name}$"):
        load_refined(path)
    path.write_bytes(b"not a torch file")
    with pytest.raises(UsageError, match=f"^{name} is not a readable refined network file: ") as corrupt:
        load_refined(path)
    torch.save({"model": nn.Linear(2, 2)}, path)  # a pickled module
    with pytest.raises(UsageError, match=r"not weights-only data \(Unsupported global: .*Linear") as pickled:
        load_refined(path)
    torch.save({"state_dict": {}}, path)
    with pytest.raises(UsageError, match=f"^{name} is not a refined network file: format None, expected 'refined-v1'$"):
        load_refined(path)
    torch.save({"format": "refined-v1", "specs": [], "state_dict": {}}, path)
    with pytest.raises(UsageError, match="damaged refined network file"):
        load_refined(path)
    assert "\n" not in str(corrupt.value) + str(pickled.value)


def test_specs_and_weights_that_do_not_fit_are_usage_errors():
    base = TCN()
    with pytest.raises(UsageError, match="refined spec names 'c9', which is no module of TCN"):
        apply_specs(base, {"c9": {"type": "Linear", "in_features": 2, "out_features": 2}})
    with pytest.raises(UsageError, match="refined spec of 'c0': unknown module type 'Conv3d'"):
        apply_specs(base, {"c0": {"type": "Conv3d"}})
    with pytest.raises(UsageError, match="refined spec of 'fc' does not build a Linear"):
        apply_specs(base, {"fc": {"type": "Linear", "in_feature": 2}})
    record = refined_record(nn.Sequential(nn.Linear(3, 3)))
    with pytest.raises(UsageError, match="the refined weights do not fit TCN: .*Missing key"):
        rebuild(base, {**record, "specs": {}})
    with pytest.raises(UsageError, match="specs cannot be metadata"):
        refined_record(base, specs={})
    assert isinstance(apply_specs(base, {}).c0, nn.Conv1d) and apply_specs(base, {}) is not base
