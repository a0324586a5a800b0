"""`gp`: its fast likelihood equals scikit-learn's, it tolerates constant genes, and keeps warnings local."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import kendalltau
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor

from acc_predictor import create_predictor
from acc_predictor.gp import JITTER, MaternARDObjective


def gp(space, **kwargs):
    return create_predictor("gp", xl=space.xl, xu=space.xu, cv_folds=0, **kwargs)


def test_fast_objective_equals_scikit_learn_log_marginal_likelihood(space, smooth):
    model = gp(space)
    z, y = model.scale(smooth.x_train[:50]), smooth.y_train[:50]
    z[:, 4] = 0.5  # include a constant gene
    reference = GaussianProcessRegressor(model.kernel(), alpha=JITTER, normalize_y=True, optimizer=None).fit(z, y)
    objective = MaternARDObjective(z, y)
    bounds = reference.kernel_.bounds
    rng = np.random.default_rng(0)
    for theta in [reference.kernel_.theta, *rng.uniform(bounds[:, 0], bounds[:, 1], size=(4, len(bounds)))]:
        lml, grad = reference.log_marginal_likelihood(theta, eval_gradient=True)
        value, fast_grad = objective.value_and_grad(theta)
        assert value == pytest.approx(-lml, rel=1e-9)
        np.testing.assert_allclose(fast_grad, -grad, rtol=1e-6, atol=1e-8 * np.abs(grad).max())


def test_fits_hyper_parameters_by_marginal_likelihood(space, smooth):
    model = gp(space, n_restarts=0).fit(smooth.x_train, smooth.y_train)
    untrained = GaussianProcessRegressor(model.kernel(), alpha=JITTER, normalize_y=True, optimizer=None)
    untrained.fit(model.scale(smooth.x_train), smooth.y_train)
    assert model.model.log_marginal_likelihood_value_ > untrained.log_marginal_likelihood_value_ + 10


def test_constant_genes_and_constant_targets(space, smooth):
    weights = np.linspace(-1.0, 1.0, space.n_var)
    x, x_test = smooth.x_train.copy(), smooth.x_test.copy()
    x[:, [0, 9, 45]] = 1
    x_test[:, [0, 9, 45]] = 1
    model = gp(space, n_restarts=0).fit(x, x @ weights)
    assert np.allclose(model.model.kernel_.k1.k2.length_scale[[0, 9, 45]], 1.0)  # no gradient: left at the start
    assert kendalltau(x_test @ weights, model.predict(x_test)).statistic > 0.9
    flat = gp(space).fit(smooth.x_train[:20], np.full(20, 75.0))
    np.testing.assert_allclose(flat.predict(smooth.x_test), 75.0, atol=1e-6)


def test_convergence_warnings_are_silenced_locally(space, smooth):
    filters = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gp(space, n_restarts=1).fit(smooth.x_train[:30], smooth.y_train[:30])
    assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert warnings.filters == filters
