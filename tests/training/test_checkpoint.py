import pytest
import torch

from training.checkpoint import cpu_state_dict, read_checkpoint, state_dict_of, subnet_checkpoint
from utils.errors import UsageError


def test_cpu_state_dict_is_a_copy():
    net = torch.nn.Linear(2, 2)
    state = cpu_state_dict(net)
    with torch.no_grad():
        net.weight.add_(1.0)
    assert not torch.equal(state["weight"], net.weight)
    assert all(v.is_contiguous() and v.device.type == "cpu" and not v.requires_grad for v in state.values())


def test_reads_a_dict_and_finds_its_state_dict(tmp_path):
    weights = {"w": torch.arange(3.0)}
    torch.save({"state_dict": weights, "arch": {"r": 16}}, tmp_path / "a.pth")
    torch.save(weights, tmp_path / "bare.pth")
    wrapped, bare = read_checkpoint(tmp_path / "a.pth"), read_checkpoint(tmp_path / "bare.pth")
    assert wrapped["arch"] == {"r": 16}
    assert state_dict_of(wrapped, "a.pth")["w"].tolist() == [0.0, 1.0, 2.0]
    assert state_dict_of(bare, "bare.pth")["w"].tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "checkpoint not found"),
        ([torch.ones(1)], "holds a list, expected a dict"),
        ({"state_dict": {}}, "holds no state_dict of tensors"),
        ({"state_dict": {"w": 1}}, "holds no state_dict of tensors"),
    ],
)
def test_unusable_files_are_usage_errors(tmp_path, content, message):
    path = tmp_path / "c.pth"
    if content is not None:
        torch.save(content, path)
    with pytest.raises(UsageError, match=message):
        state_dict_of(read_checkpoint(path), path)


def test_subnet_checkpoint_records_what_rebuilds_the_network():
    net = torch.nn.Linear(2, 3)
    record = subnet_checkpoint(net, {"r": 16}, n_classes=3, width_mult=1.2)
    assert set(record) == {"state_dict", "arch", "n_classes", "width_mult"}
    assert (record["arch"], record["n_classes"], record["width_mult"]) == ({"r": 16}, 3, 1.2)
    assert torch.equal(record["state_dict"]["weight"], net.weight.detach())
