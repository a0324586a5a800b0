"""`mlp`: fast, early-stopped, deterministic without the global RNG, and both encodings work."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau

from acc_predictor import create_predictor


def mlp(space, **kwargs):
    return create_predictor("mlp", xl=space.xl, xu=space.xu, cv_folds=0, **kwargs)


def test_fits_100_points_quickly_and_stops_early(space, smooth):
    model = mlp(space)
    start = time.perf_counter()
    model.fit(smooth.x_train, smooth.y_train)
    assert time.perf_counter() - start < 5.0
    assert model.patience <= model.epochs_run < model.max_epochs


def test_global_torch_rng_is_neither_used_nor_needed(space, smooth):
    torch.manual_seed(123)
    a = mlp(space, seed=4).fit(smooth.x_train, smooth.y_train).predict(smooth.x_test)
    torch.manual_seed(456)
    state = torch.random.get_rng_state()
    b = mlp(space, seed=4).fit(smooth.x_train, smooth.y_train).predict(smooth.x_test)
    assert torch.equal(torch.random.get_rng_state(), state)
    np.testing.assert_array_equal(a, b)
    c = mlp(space, seed=5).fit(smooth.x_train, smooth.y_train).predict(smooth.x_test)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("encoding", ["onehot", "scaled"])
def test_encodings(space, smooth, encoding):
    model = mlp(space, encoding=encoding).fit(smooth.x_train, smooth.y_train)
    assert kendalltau(smooth.y_test, model.predict(smooth.x_test)).statistic > 0.45


def test_tiny_data_trains_without_a_hold_out(space, smooth):
    model = mlp(space, max_epochs=20).fit(smooth.x_train[:3], smooth.y_train[:3])
    assert model.epochs_run == 20
    assert np.all(np.isfinite(model.predict(smooth.x_test)))


def test_bad_settings(space):
    with pytest.raises(ValueError, match="encoding"):
        mlp(space, encoding="binary")
    with pytest.raises(ValueError, match="dropout"):
        mlp(space, dropout=1.0)
