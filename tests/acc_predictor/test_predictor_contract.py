"""The contract every registered predictor keeps; a newly registered one is tested here with no new test."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau

from acc_predictor import PREDICTORS, CVReport, create_predictor, list_predictors, min_points
from utils.errors import UsageError

NAMES = list_predictors()

# Held-out Kendall tau on the smooth synthetic target (100 training, 200 held-out architectures). Measured on this
# data: gp 0.984, rbf 0.896, as 0.896 (picks rbf), mlp 0.792, carts 0.632; over two other draws of the data the
# lowest were gp 0.87, rbf 0.878, mlp 0.66, carts 0.57. The thresholds sit about 0.1 below this data's values.
MIN_TAU = {"rbf": 0.8, "gp": 0.8, "as": 0.8, "mlp": 0.65, "carts": 0.5}
MIN_TAU_NEW = 0.5
"""A newly registered predictor must at least rank like the random forest does."""


def build(name, space, **kwargs):
    return create_predictor(name, xl=space.xl, xu=space.xu, seed=0, **kwargs)


def test_every_design_predictor_is_registered():
    assert {"as", "carts", "gp", "mlp", "rbf"} <= set(NAMES)
    assert "adaptive" in list_predictors(aliases=True) and "adaptive" not in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_ranks_held_out_architectures(name, smooth, fitted_on_smooth):
    pred = fitted_on_smooth[name].predict(smooth.x_test)
    assert pred.shape == (len(smooth.x_test),) and pred.dtype == np.float64
    tau = kendalltau(smooth.y_test, pred).statistic
    assert tau >= MIN_TAU.get(name, MIN_TAU_NEW), f"{name}: held-out tau {tau:.3f}"


@pytest.mark.parametrize("name", NAMES)
def test_report_is_a_five_fold_cross_validation(name, smooth, fitted_on_smooth):
    model = fitted_on_smooth[name]
    assert model.name == name
    report = model.report
    assert isinstance(report, CVReport)
    assert report.n == len(smooth.x_train) and report.n_folds == 5
    assert np.isfinite(report.rmse) and report.rmse > 0
    assert -1 <= report.tau <= 1 and -1 <= report.rho <= 1
    # Out-of-sample numbers track held-out quality, not the near-perfect fit to the training points.
    assert report.tau >= MIN_TAU.get(name, MIN_TAU_NEW) - 0.15


@pytest.mark.parametrize("name", NAMES)
def test_output_shapes(name, smooth, fitted_on_smooth):
    model = fitted_on_smooth[name]
    assert model.predict(smooth.x_test[:1]).shape == (1,)
    assert model.predict(smooth.x_test[:0]).shape == (0,)
    assert model.predict(smooth.x_train.tolist()).shape == (len(smooth.x_train),)
    assert model.predict(smooth.x_test.astype(float)).shape == (len(smooth.x_test),)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_predictions_and_global_rng_untouched(name, space, smooth, fitted_on_smooth):
    first = fitted_on_smooth[name]
    torch.manual_seed(1234)
    np.random.seed(5678)
    torch_state, np_state, threads = torch.random.get_rng_state(), np.random.get_state(), torch.get_num_threads()
    second = build(name, space).fit(smooth.x_train, smooth.y_train)
    np.testing.assert_array_equal(first.predict(smooth.x_test), second.predict(smooth.x_test))
    assert first.report == second.report
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize("name", NAMES)
def test_report_is_out_of_sample_on_noise(name, space, noise):
    model = build(name, space).fit(noise.x_train, noise.y_train)
    assert abs(model.report.tau) < 0.3, f"{name}: cross-validated tau {model.report.tau:.3f} on pure noise"


@pytest.mark.parametrize("name", NAMES)
def test_cv_folds_zero_leaves_no_report(name, space, smooth):
    if PREDICTORS.get(name).needs_cv:
        with pytest.raises(ValueError, match="cv_folds"):
            build(name, space, cv_folds=0)
        return
    model = build(name, space, cv_folds=0).fit(smooth.x_train[:30], smooth.y_train[:30])
    assert model.report is None
    assert model.predict(smooth.x_test).shape == (len(smooth.x_test),)


@pytest.mark.parametrize("name", NAMES)
def test_fits_on_its_declared_minimum_and_refuses_fewer(name, space, smooth):
    n = min_points(name)
    assert n == PREDICTORS.meta(name)["min_points"] and n >= 2
    x, y = smooth.x_train[:n], smooth.y_train[:n]
    model = build(name, space).fit(x, y)
    assert model.report.n == n and np.all(np.isfinite(model.predict(smooth.x_test[:5])))
    with pytest.raises(ValueError, match=f"at least {n}"):
        build(name, space).fit(x[:-1], y[:-1])


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_are_value_errors(name, space, smooth):
    x, y = smooth.x_train[:20], smooth.y_train[:20]
    nan_y = y.copy()
    nan_y[3] = np.nan
    out_of_bounds = x.copy()
    out_of_bounds[0, 5] = space.xu[5] + 1
    infinite = x.astype(float)
    infinite[1, 2] = np.inf
    bad = [
        (x[0], y[:1], "2-D"),
        (x[:, :-1], y, "columns"),
        (x, y[:-1], "targets"),
        (x, nan_y, "finite"),
        (out_of_bounds, y, "outside"),
        (infinite, y, "finite numbers"),
        (x[:3], y[:3], "at least 4"),
    ]
    for xb, yb, message in bad:
        with pytest.raises(ValueError, match=message):
            build(name, space).fit(xb, yb)
    with pytest.raises(RuntimeError, match="not fitted"):
        build(name, space).predict(x)


@pytest.mark.parametrize("name", NAMES)
def test_real_valued_features_in_the_unit_box(name, space, smooth):
    """What a search hands a predictor: features in [0, 1] (here scaled genes plus a real column), not genes."""
    span = np.where(space.xu > space.xl, space.xu - space.xl, 1)
    x = np.hstack([(smooth.x_train[:60] - space.xl) / span, np.linspace(0, 1, 60)[:, None]])
    model = create_predictor(name, xl=np.zeros(x.shape[1]), xu=np.ones(x.shape[1]), seed=0).fit(x, smooth.y_train[:60])
    assert np.all(np.isfinite(model.predict(x))) and model.report.n == 60


@pytest.mark.parametrize("name", NAMES)
def test_predict_rejects_bad_shapes(name, smooth, fitted_on_smooth):
    model = fitted_on_smooth[name]
    with pytest.raises(ValueError, match="columns"):
        model.predict(smooth.x_test[:, :10])
    with pytest.raises(ValueError, match="2-D"):
        model.predict(smooth.x_test[0])


def test_unknown_name_is_a_usage_error_listing_the_choices(space):
    with pytest.raises(UsageError) as err:
        create_predictor("xgboost", xl=space.xl, xu=space.xu)
    for name in list_predictors(aliases=True):
        assert name in str(err.value)
