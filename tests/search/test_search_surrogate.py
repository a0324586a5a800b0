"""The surrogate's inputs (space features plus log costs) and its prospective record."""

import numpy as np
import pytest

from evaluator import EvalResult
from search.surrogate import CostRecords, SurrogateFeatures, with_outcome
from search_space.ofa_mbv3 import OFAMobileNetV3Space
from tests.search_space.tiny_space import TinySpace


@pytest.mark.parametrize("space", [OFAMobileNetV3Space(lr=24, ur=32), TinySpace()], ids=["ofa_mbv3", "tiny"])
def test_features_lie_in_the_unit_box_with_log_costs_last(space):
    costs = space.cost_function(10)
    features = SurrogateFeatures(space, costs)
    genomes = np.array([space.encode(a) for a in space.sample(50, np.random.default_rng(0))])
    f = features(genomes)
    assert f.shape == (len(genomes), features.n_features) and features.n_features == space.n_var + 2
    assert np.all((f >= 0) & (f <= 1))
    assert np.all(features.xl == 0) and np.all(features.xu == 1)
    ends = features(np.array([space.encode(space.smallest()), space.encode(space.largest())]))
    np.testing.assert_allclose(ends[:, -2:], [[0, 0], [1, 1]])
    macs = np.array([costs(space.decode(g)).macs for g in genomes])
    expected = (np.log(macs) - np.log(costs(space.smallest()).macs)) / (
        np.log(costs(space.largest()).macs) - np.log(costs(space.smallest()).macs)
    )
    np.testing.assert_allclose(f[:, -2], expected)
    records = features.cost_records(genomes)
    np.testing.assert_array_equal(features(genomes, records), f)


def test_ofa_features_read_unused_layers_as_absent():
    space = OFAMobileNetV3Space(lr=24, ur=32)
    arch = space.decode(np.zeros(space.n_var, dtype=int))  # depth 2 everywhere, kernel 3, expansion 3, 24 px
    f = space.features(space.encode(arch)[None, :])[0]
    stage0 = f[:9]  # depth, 4 kernels, 4 expansions
    np.testing.assert_allclose(stage0, [0, 1 / 3, 1 / 3, 0, 0, 1 / 3, 1 / 3, 0, 0])
    assert f[-1] == 0.0
    wide = space.largest()
    np.testing.assert_allclose(space.features(space.encode(wide)[None, :])[0], 1.0)


@pytest.mark.parametrize("space", [OFAMobileNetV3Space(lr=24, ur=32), TinySpace()], ids=["ofa_mbv3", "tiny"])
def test_canonical_equals_encode_of_decode(space):
    genomes = np.random.default_rng(3).integers(space.xl, space.xu + 1, size=(300, space.n_var))
    np.testing.assert_array_equal(space.canonical(genomes), [space.encode(space.decode(g)) for g in genomes])


def test_outcome_pairs_predictions_with_measurements_and_skips_failures():
    arch = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 24}
    results = [
        EvalResult(arch, "ok", top1=70.0),
        EvalResult.failure(arch, "boom"),
        EvalResult(arch, "ok", top1=72.0),
        EvalResult(arch, "ok", top1=71.0),
    ]
    record = with_outcome({"tau": 0.5, "predicted_top1": [69.0, 80.0, 73.0, 70.5]}, results)
    assert record["measured_top1"] == [70.0, None, 72.0, 71.0]
    assert record["prospective_tau"] == pytest.approx(1.0)  # 69 < 70.5 < 73 ranks 70 < 71 < 72 right
    assert with_outcome({"tau": 0.5}, results) == {"tau": 0.5}


def test_cost_records_count_each_genome_once_and_hand_out_copies():
    space = TinySpace()
    costs = space.cost_function(10)
    calls = []

    def counted(arch):
        calls.append(arch)
        return costs(arch)

    records = CostRecords(space, counted)
    genomes = np.array([space.encode(a) for a in space.sample(5, np.random.default_rng(0))])
    first = records(np.concatenate([genomes, genomes]))
    assert len(calls) == len(np.unique(genomes, axis=0))
    assert first[: len(genomes)] == first[len(genomes) :] == [costs(space.decode(g)).as_dict() for g in genomes]
    first[0]["top1"] = 50.0
    assert "top1" not in records(genomes[:1])[0] and len(calls) == len(np.unique(genomes, axis=0))
