"""The tiny second space (`tiny_space.py`): exact costs, and a whole search over it through msunas.py."""

import json

import pytest
import torch

import msunas
from search_space import SEARCH_SPACES
from tests.search_space.tiny_space import TinySpace, live_peak
from utils.cli import run_cli

SMALLEST = {"w": [8, 16], "k": [3, 3], "r": 16}


@pytest.fixture
def registered():
    with SEARCH_SPACES.register_temporarily("tiny", TinySpace):
        yield


def test_exact_costs_of_the_smallest_network():
    counts = TinySpace().cost_function(10, array=(4, 4)).counts(SMALLEST)
    # conv 3->8 (3x3) at 8x8, BN 8; conv 8->16 (3x3) at 4x4, BN 16; linear 16->10
    assert counts.params == 216 + 16 + 1152 + 32 + 170
    assert counts.macs == 216 * 64 + 1152 * 16 + 160
    assert counts.activations == 2 * 512 + 2 * 256 + 16 + 10
    assert counts.peak_act == 3 * 256 + 512
    assert counts.latency == 7 * 2 * 64 + 18 * 4 * 16 + 4 * 3


@pytest.mark.parametrize("arch", [SMALLEST, {"w": [16, 32], "k": [5, 3], "r": 20}, {"w": [8, 32], "k": [3, 5], "r": 9}])
def test_peak_activations_equal_the_traced_peak(arch):
    space = TinySpace().unrestricted()
    net = space.extract(space.build_supernet(3), arch)
    assert space.cost_function(3).counts(arch).peak_act == live_peak(net, arch["r"])


def test_a_search_over_the_tiny_space_runs_end_to_end(registered, tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / "tiny.pth"
    torch.save({"state_dict": TinySpace().build_supernet(10).state_dict()}, weights)
    save = tmp_path / "run"
    argv = ["--search_space", "tiny", "--supernet_path", str(weights), "--save", str(save), "--sec_obj", "macs"]
    argv += ["--lr", "16", "--ur", "24", "--n_doe", "5", "--iterations", "1", "--n_iter", "3", "--n_bn_cal", "32"]
    argv += ["--pop_size", "8", "--n_gen", "2", "--predictor", "carts", "--device", "cpu"]
    assert run_cli(msunas.main, argv) == 0
    stats = json.loads((save / "iter_1.stats").read_text())
    assert len(stats["archive"]) == 8 and stats["config"]["search_space"] == "tiny"
    costs = TinySpace().cost_function(10)
    for arch, err, macs in stats["archive"]:
        assert set(arch) == {"w", "k", "r"} and 0 <= err <= 100
        assert macs == pytest.approx(costs(arch).macs)
    net_stats = json.loads((save / "iter_1" / "net_0" / "net_0.stats").read_text())
    assert net_stats["status"] == "ok" and net_stats["peak_act"] == pytest.approx(
        costs(stats["archive"][5][0]).peak_act
    )
