import pytest
import torch

from supernets.checkpoint import load_supernet_weights, save_supernet_weights
from supernets.ofa_mbv3 import SupernetConfig, build_supernet
from utils.errors import UsageError


@pytest.fixture(scope="module")
def imagenet_supernet():
    torch.manual_seed(0)
    return build_supernet(SupernetConfig(n_classes=1000))


def _released_file(path, net, legacy: bool) -> None:
    """A file laid out like OFA's released `ofa_mbv3_d234_e346_k357_w1.0`: `{"state_dict": ...}`."""
    state = {k: v.clone() for k, v in net.state_dict().items()}
    if legacy:  # the older releases name the block body `mobile_inverted_conv`
        state = {
            k.replace(".conv.", ".mobile_inverted_conv.", 1) if k.startswith("blocks.") else k: v
            for k, v in state.items()
        }
    torch.save({"state_dict": state}, path)


@pytest.mark.parametrize("legacy", [False, True])
def test_loads_ofa_release_format_with_same_classes(tmp_path, imagenet_supernet, legacy):
    path = tmp_path / "ofa_mbv3_d234_e346_k357_w1.0"
    _released_file(path, imagenet_supernet, legacy)
    fresh = build_supernet(SupernetConfig(n_classes=1000))
    load_supernet_weights(fresh, path)
    for key, value in imagenet_supernet.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


def test_other_n_classes_keeps_backbone_and_reinitialises_classifier(tmp_path, imagenet_supernet, caplog):
    path = tmp_path / "ofa_mbv3_d234_e346_k357_w1.0"
    _released_file(path, imagenet_supernet, legacy=True)
    torch.manual_seed(1)
    net = build_supernet(SupernetConfig(n_classes=10))
    fresh_classifier = net.classifier.linear.weight.clone()
    load_supernet_weights(net, path)
    assert torch.equal(net.classifier.linear.weight, fresh_classifier)
    assert net.classifier.linear.weight.shape == (10, 1280)
    assert torch.equal(net.first_conv.conv.weight, imagenet_supernet.first_conv.conv.weight)
    assert "re-initialising" in caplog.text


def test_round_trip_of_our_own_files(tmp_path):
    net = build_supernet(SupernetConfig(n_classes=10))
    path = save_supernet_weights(net, tmp_path / "w.pth")
    assert set(torch.load(path, weights_only=True)) == {"state_dict"}
    other = build_supernet(SupernetConfig(n_classes=10))
    load_supernet_weights(other, path)
    assert torch.equal(
        other.blocks[3].conv.point_linear.conv.conv.weight, net.blocks[3].conv.point_linear.conv.conv.weight
    )


def test_missing_file(tmp_path):
    with pytest.raises(UsageError, match=f"checkpoint not found: {tmp_path / 'nope.pth'}"):
        load_supernet_weights(build_supernet(SupernetConfig()), tmp_path / "nope.pth")


def test_corrupt_file(tmp_path):
    path = tmp_path / "bad.pth"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UsageError, match=f"corrupt or unreadable checkpoint {path}"):
        load_supernet_weights(build_supernet(SupernetConfig()), path)


def test_truncated_file(tmp_path):
    path = save_supernet_weights(build_supernet(SupernetConfig()), tmp_path / "w.pth")
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(UsageError, match="corrupt or unreadable checkpoint"):
        load_supernet_weights(build_supernet(SupernetConfig()), path)


def test_file_of_another_supernet_is_a_mismatch(tmp_path):
    path = save_supernet_weights(build_supernet(SupernetConfig(width_mult=1.2)), tmp_path / "w12.pth")
    with pytest.raises(UsageError, match="does not fit the supernet being built"):
        load_supernet_weights(build_supernet(SupernetConfig(width_mult=1.0)), path)


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save({"state_dict": {"a": 1}}, path)
    with pytest.raises(UsageError, match="holds no state_dict of tensors"):
        load_supernet_weights(build_supernet(SupernetConfig()), path)


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}, "obj": SupernetConfig()}, path)
    with pytest.raises(UsageError, match="corrupt or unreadable checkpoint"):
        load_supernet_weights(build_supernet(SupernetConfig()), path)
