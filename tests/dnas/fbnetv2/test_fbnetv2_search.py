import pytest

from data import create_dataset
from dnas.fbnetv2 import FBNetV2, SearchConfig, lenet_arch_def, search, split_for_search
from hw import SystolicArray
from utils.errors import UsageError


@pytest.fixture(scope="module")
def digits():
    return create_dataset("digits", vld_size=200, seed=0)


def test_large_strength_finds_a_faster_network_than_no_strength(digits):
    hardware = SystolicArray(8, 8)
    results = {
        strength: search(lenet_arch_def(), digits, hardware, SearchConfig(strength=strength, epochs=3, final_epochs=1))
        for strength in (0.0, 10.0)
    }
    assert results[10.0].latency < results[0.0].latency
    for result in results.values():
        assert result.reference_latency == results[0.0].reference_latency
        assert 0 <= result.test_top1 <= 100 and 0 <= result.valid_top1 <= 100
        assert len(result.history) == 3
        assert result.params > 0 and result.macs > 0
    assert results[10.0].history[-1]["expected_cost_ratio"] < results[0.0].history[-1]["expected_cost_ratio"]


def test_uniform_baseline_searches_nothing_and_trains(digits):
    arch_def = lenet_arch_def().scaled(0.5)
    result = search(arch_def, digits, SystolicArray(8, 8), SearchConfig(epochs=1, final_epochs=1))
    assert [layer["width"] for layer in result.summary["layers"]] == [16, 32, 60, 42, 10]
    assert result.latency == result.reference_latency  # its own maximal network
    assert result.summary["params"] < FBNetV2(lenet_arch_def()).get_size()


def test_architecture_split_is_disjoint_and_complete(digits):
    weights, arch = split_for_search(digits, 0.2, seed=0)
    assert len(weights.train) + len(arch.train) == len(digits.train)
    assert abs(len(arch.train) - 0.2 * len(digits.train)) <= 1
    assert weights.valid is digits.valid and arch.test is digits.test


def test_invalid_config_is_a_usage_error(digits):
    with pytest.raises(UsageError):
        SearchConfig(arch_split=1.0)
    with pytest.raises(UsageError, match="16 px"):
        search(lenet_arch_def(), digits, cfg=SearchConfig(resolution=16))
