import dataclasses

import pytest
import torch

from oneshot.scoring import PathScorer
from search_space.base import InvalidArchitecture
from training.bn import recalibrate_bn
from training.evaluate import accuracy, calibration_images

RES = 16
PATH = [0, 1, 2, 3, 0, 1]


@pytest.fixture
def scorer_of(os_digits):
    def make(net, splits=os_digits, **kw):
        return PathScorer(net, splits, RES, **{"n_bn_cal": 24, "batch_size": 16, "valid_limit": 48, "seed": 3, **kw})

    return make


def test_scoring_leaves_the_supernet_unchanged(os_supernet, scorer_of, os_state, os_same):
    os_supernet.train()
    before = os_state(os_supernet)
    scorer = scorer_of(os_supernet)
    for path in (PATH, [3] * 6, [0] * 6):
        assert 0.0 <= scorer(path) <= 100.0
    assert os_same(before, os_state(os_supernet))
    assert os_supernet.training


def test_same_path_same_score_measured_once(os_supernet, scorer_of):
    scorer = scorer_of(os_supernet)
    first = scorer(PATH)
    assert scorer(tuple(PATH)) == first
    assert scorer(torch.tensor(PATH).numpy()) == first
    assert scorer.calls == 1
    assert scorer_of(os_supernet)(PATH) == first  # a fresh scorer measures the same


def test_score_is_extract_recalibrate_validate(os_supernet, os_digits, scorer_of):
    scorer = scorer_of(os_supernet)
    for path in (PATH, [2] * 6):
        net = os_supernet.extract(path)
        recalibrate_bn(net, calibration_images(os_digits, RES, 24, batch_size=16, seed=3, device="cpu"))
        manual = accuracy(net, os_digits, "valid", RES, batch_size=16, limit=48)
        assert scorer(path) == manual


def test_every_path_is_calibrated_on_the_same_images(os_supernet, os_digits, scorer_of):
    scorer = scorer_of(os_supernet)
    scorer(PATH)
    images = scorer.calibration_images()
    scorer([1] * 6)
    assert scorer.calibration_images() is images
    fresh = list(calibration_images(os_digits, RES, 24, batch_size=16, seed=3, device="cpu"))
    assert sum(x.shape[0] for x in images) == 24
    assert all(torch.equal(a, b) for a, b in zip(images, fresh, strict=True))


def test_no_calibration_keeps_the_supernets_statistics(os_supernet, os_digits, scorer_of):
    scorer = scorer_of(os_supernet, n_bn_cal=0)
    manual = accuracy(os_supernet.extract(PATH).eval(), os_digits, "valid", RES, batch_size=16, limit=48)
    assert scorer(PATH) == manual


def test_scores_the_validation_split_never_test(os_supernet, os_digits, scorer_of):
    no_test = dataclasses.replace(os_digits, test=None)
    assert scorer_of(os_supernet, splits=no_test)(PATH) == scorer_of(os_supernet)(PATH)


def test_an_invalid_path_is_an_invalid_architecture(os_supernet, scorer_of):
    with pytest.raises(InvalidArchitecture):
        scorer_of(os_supernet)([0, 1])
    with pytest.raises(InvalidArchitecture):
        scorer_of(os_supernet)([4] * 6)
