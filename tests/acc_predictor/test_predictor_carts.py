"""`carts`: a compiled random forest, fast enough to refit every generation."""

from __future__ import annotations

import time

import numpy as np
import pytest

from acc_predictor import create_predictor


def test_fits_500_architectures_fast(space, sample_genomes):
    x = sample_genomes(500, seed=11)
    y = x @ np.linspace(0, 1, x.shape[1])
    model = create_predictor("carts", xl=space.xl, xu=space.xu, cv_folds=0)
    start = time.perf_counter()
    model.fit(x, y)
    assert time.perf_counter() - start < 5.0  # ~0.4 s on one core; a generous guard for loaded machines
    assert model.model.n_estimators == 300 and model.model.n_jobs == 1


def test_different_seeds_give_different_forests(space, smooth):
    a = create_predictor("carts", xl=space.xl, xu=space.xu, seed=0, cv_folds=0).fit(smooth.x_train, smooth.y_train)
    b = create_predictor("carts", xl=space.xl, xu=space.xu, seed=1, cv_folds=0).fit(smooth.x_train, smooth.y_train)
    assert not np.array_equal(a.predict(smooth.x_test), b.predict(smooth.x_test))


def test_bad_settings(space):
    with pytest.raises(ValueError, match="fractions"):
        create_predictor("carts", xl=space.xl, xu=space.xu, max_features=0.0)
    with pytest.raises(ValueError, match="n_estimators"):
        create_predictor("carts", xl=space.xl, xu=space.xu, n_estimators=0)
