"""Cross-validation, reports, validation and the registry, on tiny hand-checkable cases."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from acc_predictor import CVReport, Predictor, create_predictor, cross_validate, list_predictors, register_predictor
from acc_predictor.adaptive import AdaptiveSwitching
from acc_predictor.base import correlations, cv_folds_for

XL, XU = np.zeros(2), np.full(2, 2)


class MeanPredictor(Predictor):
    """Predicts the mean of its training targets (not registered)."""

    name = "mean"

    def _fit(self, x, y):
        self.mean = float(np.mean(y))

    def _predict(self, x):
        return np.full(len(x), self.mean)


def tiny():
    x = np.array([[0, 0], [1, 0], [2, 1], [0, 2]])
    y = np.array([0.0, 0.0, 0.0, 4.0])
    return x, y


def test_cross_validate_of_the_training_mean_matches_a_hand_computation():
    # 4 points, 5 folds asked: 4 // 2 = 2 folds of 2. Whatever the shuffle, the fold holding y=4 is predicted by
    # the mean of two zeros (errors 0 and 4) and the other fold by mean(0, 4) = 2 (errors 2 and 2).
    x, y = tiny()
    report, fold_taus = cross_validate(lambda: MeanPredictor(XL, XU, cv_folds=0), x, y, folds=5, seed=0)
    assert report.n_folds == 2 and report.n == 4
    assert report.rmse == pytest.approx(math.sqrt((0 + 16 + 4 + 4) / 4))
    # Held-out predictions (2, 2, 0, 0) against targets (0, 0, 0, 4) up to order: 2 discordant pairs, 3 ties in
    # the targets, 2 in the predictions: tau_b = -2 / sqrt((6 - 3)(6 - 2)), and Spearman's rho comes out equal.
    assert report.tau == pytest.approx(-2 / math.sqrt(12))
    assert report.rho == pytest.approx(-2 / math.sqrt(12))
    # Each fold alone has constant predictions or constant targets: undefined correlations count as 0.
    assert fold_taus == [0.0, 0.0]


def test_fit_reports_the_same_cross_validation_as_cross_validate():
    x, y = tiny()
    model = MeanPredictor(XL, XU, seed=3).fit(x, y)
    expected, _ = cross_validate(lambda: MeanPredictor(XL, XU, cv_folds=0), x, y, folds=5, seed=3)
    assert model.report == expected
    assert model.predict(x).tolist() == [1.0] * 4


def test_constant_predictions_correlate_zero_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert correlations(np.array([1.0, 2.0, 3.0]), np.array([5.0, 5.0, 5.0])) == (0.0, 0.0)
        assert correlations(np.array([1.0, 1.0]), np.array([1.0, 2.0])) == (0.0, 0.0)
    assert correlations(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])) == (pytest.approx(-1), pytest.approx(-1))


def test_folds_drop_on_small_data_so_each_fold_has_two_points():
    assert cv_folds_for(100, 5) == 5
    assert cv_folds_for(10, 5) == 5
    assert cv_folds_for(9, 5) == 4
    assert cv_folds_for(4, 5) == 2
    with pytest.raises(ValueError, match="at least 4 points"):
        cv_folds_for(3, 5)
    with pytest.raises(ValueError, match="at least 2 folds"):
        cv_folds_for(10, 1)


def test_point_counts():
    x, y = tiny()
    MeanPredictor(XL, XU, cv_folds=0).fit(x[:2], y[:2])
    with pytest.raises(ValueError, match="at least 2 training points"):
        MeanPredictor(XL, XU, cv_folds=0).fit(x[:1], y[:1])
    with pytest.raises(ValueError, match="at least 4 points"):
        MeanPredictor(XL, XU).fit(x[:3], y[:3])
    with pytest.raises(ValueError, match="cv_folds"):
        MeanPredictor(XL, XU, cv_folds=1)


def test_bounds_are_checked():
    with pytest.raises(ValueError, match="equal length"):
        MeanPredictor(np.zeros(2), np.ones(3))
    with pytest.raises(ValueError, match="xl <= xu"):
        MeanPredictor(np.ones(2), np.zeros(2))


def test_report_as_dict():
    report = CVReport(rmse=0.5, rho=0.25, tau=0.125, n_folds=5, n=10)
    assert report.as_dict() == {"rmse": 0.5, "rho": 0.25, "tau": 0.125, "n_folds": 5, "n": 10}
    with pytest.raises(AttributeError):
        report.tau = 1.0  # type: ignore[misc]


def test_clone_keeps_constructor_arguments():
    model = create_predictor("carts", xl=XL, xu=XU, seed=7, n_estimators=11, cv_folds=3)
    copy = model.clone(cv_folds=0)
    assert (copy.seed, copy.n_estimators, copy.cv_folds, copy.report) == (7, 11, 0, None)
    assert copy is not model and np.array_equal(copy.xu, model.xu)


def test_registry():
    names = list_predictors()
    assert names == sorted(names) and "adaptive" not in names
    assert set(list_predictors(aliases=True)) == {*names, "adaptive"}
    assert isinstance(create_predictor("adaptive", xl=XL, xu=XU), AdaptiveSwitching)
    with pytest.raises(ValueError, match="registered twice"):
        register_predictor("rbf", min_points=4)(type("Again", (MeanPredictor,), {"name": "rbf"}))
    with pytest.raises(ValueError, match="registered as"):
        register_predictor("other", min_points=4)(MeanPredictor)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match=f"min_points must be a positive int, got {bad}"):
            register_predictor("other", min_points=bad)
    assert list_predictors() == names
