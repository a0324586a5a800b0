"""`rbf` is pySOT's cubic RBF with a linear tail: it equals SciPy's `RBFInterpolator` and survives awkward data."""

from __future__ import annotations

import numpy as np
import pytest
from pySOT.surrogate import LinearTail
from scipy.interpolate import RBFInterpolator
from scipy.stats import kendalltau

from acc_predictor import create_predictor

# pySOT adds eta = 1e-6 to the kernel diagonal, which is SciPy's `smoothing`: with it the two solve the same
# system (differences ~1e-13 of the target range); against exact interpolation the eta term moves predictions by
# ~1e-8 of the range.
RTOL_SAME_SYSTEM = 1e-9
RTOL_EXACT_INTERPOLATION = 1e-6


def rbf(space, **kwargs):
    return create_predictor("rbf", xl=space.xl, xu=space.xu, cv_folds=0, **kwargs)


def test_equals_scipy_rbf_interpolator(space, smooth):
    model = rbf(space).fit(smooth.x_train, smooth.y_train)
    assert isinstance(model.model.tail, LinearTail)

    def unit(x):
        return (x - space.xl) / (space.xu - space.xl)

    pred = model.predict(smooth.x_test)
    span = np.ptp(smooth.y_train)
    for smoothing, rtol in [(model.eta, RTOL_SAME_SYSTEM), (0.0, RTOL_EXACT_INTERPOLATION)]:
        scipy_rbf = RBFInterpolator(unit(smooth.x_train), smooth.y_train, kernel="cubic", degree=1, smoothing=smoothing)
        np.testing.assert_allclose(pred, scipy_rbf(unit(smooth.x_test)), rtol=0, atol=rtol * span)


def test_interpolates_its_training_points(space, smooth):
    model = rbf(space).fit(smooth.x_train, smooth.y_train)
    np.testing.assert_allclose(model.predict(smooth.x_train), smooth.y_train, atol=1e-4)


def test_in_sample_fit_is_perfect_but_the_report_is_not(space, noise):
    model = create_predictor("rbf", xl=space.xl, xu=space.xu).fit(noise.x_train, noise.y_train)
    in_sample = kendalltau(noise.y_train, model.predict(noise.x_train)).statistic
    assert in_sample > 0.99
    assert abs(model.report.tau) < 0.3


def test_duplicate_genomes_are_averaged(space, smooth):
    x = np.vstack([smooth.x_train[:60], smooth.x_train[:5]])
    y = np.concatenate([smooth.y_train[:60], smooth.y_train[:5] + 1.0])
    model = create_predictor("rbf", xl=space.xl, xu=space.xu).fit(x, y)
    np.testing.assert_allclose(model.predict(smooth.x_train[:5]), smooth.y_train[:5] + 0.5, atol=1e-4)
    assert np.isfinite(model.report.rmse)


@pytest.mark.parametrize("n", [2, 5, 20, 46])
def test_fewer_points_than_the_linear_tail_needs(space, smooth, n):
    # A linear tail over 46 genes needs 47 affinely independent points; with fewer, it spans the data only.
    model = rbf(space).fit(smooth.x_train[:n], smooth.y_train[:n])
    assert not isinstance(model.model.tail, LinearTail)
    np.testing.assert_allclose(model.predict(smooth.x_train[:n]), smooth.y_train[:n], atol=1e-4)
    assert np.all(np.isfinite(model.predict(smooth.x_test)))


def test_constant_genes_and_degenerate_bounds(space, smooth):
    x = smooth.x_train.copy()
    x[:, 3] = 1  # a gene constant in the data
    xu = space.xu.copy()
    x[:, 7] = 0
    xu[7] = 0  # a gene with a single choice: xl == xu
    model = create_predictor("rbf", xl=space.xl, xu=xu).fit(x, smooth.y_train)
    np.testing.assert_allclose(model.predict(x), smooth.y_train, atol=1e-4)
    x_test = smooth.x_test.copy()
    x_test[:, 7] = 0
    pred = model.predict(x_test)
    assert np.all(np.isfinite(pred))
    assert kendalltau(smooth.y_test, pred).statistic > 0.7
