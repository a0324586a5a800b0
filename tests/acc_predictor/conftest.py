"""Synthetic OFA-like data for the predictor tests, and a cache of predictors fitted on it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from acc_predictor import Predictor, create_predictor
from search_space.ofa_mbv3 import OFAMobileNetV3Space

SPACE = OFAMobileNetV3Space(lr=24, ur=32)


@dataclass(frozen=True)
class Data:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def genomes(n: int, seed: int) -> np.ndarray:
    """`n` distinct canonical genomes of SPACE."""
    archs = SPACE.sample(n, np.random.default_rng(seed))
    assert len(archs) == n
    return np.array([SPACE.encode(a) for a in archs])


def unit(x: np.ndarray) -> np.ndarray:
    return (x - SPACE.xl) / (SPACE.xu - SPACE.xl)


def smooth_target(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Smooth but nonlinear accuracy: 70 + weighted genes + an interaction and a sine, plus tiny noise."""
    z = unit(x)
    weights = np.linspace(0.2, 1.0, x.shape[1])
    return 70 + z @ weights + 1.5 * z[:, -1] * z[:, 0] + 0.5 * np.sin(3 * z[:, 10]) + rng.normal(0, 0.01, len(x))


def split(x: np.ndarray, y: np.ndarray, n_train: int) -> Data:
    return Data(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


@pytest.fixture(scope="session")
def space() -> OFAMobileNetV3Space:
    return SPACE


@pytest.fixture(scope="session")
def sample_genomes():
    """`sample_genomes(n, seed)`: `n` distinct canonical genomes of the OFA test space."""
    return genomes


@pytest.fixture(scope="session")
def smooth() -> Data:
    """100 training and 200 held-out architectures (all distinct) with `smooth_target`."""
    x = genomes(300, seed=0)
    return split(x, smooth_target(x, np.random.default_rng(1)), 100)


@pytest.fixture(scope="session")
def noise() -> Data:
    """60 architectures with pure-noise targets."""
    x = genomes(60, seed=2)
    return split(x, 70 + np.random.default_rng(3).normal(0, 1, len(x)), 60)


@pytest.fixture(scope="session")
def fitted_on_smooth(smooth: Data) -> dict[str, Predictor]:
    """Predictors fitted (with their default 5-fold report) on `smooth`, built on first use and shared."""

    class Cache(dict):
        def __missing__(self, name: str) -> Predictor:
            model = create_predictor(name, xl=SPACE.xl, xu=SPACE.xu, seed=0).fit(smooth.x_train, smooth.y_train)
            self[name] = model
            return model

    return Cache()
