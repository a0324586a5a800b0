"""Registry of accuracy predictors; `create_predictor(name, xl=..., xu=...)` is the one way to build one."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from acc_predictor.base import Predictor
from utils.registry import Registry

PREDICTORS: Registry[Predictor] = Registry("predictor")


def register_predictor(
    name: str, *aliases: str, min_points: int, **meta: object
) -> Callable[[type[Predictor]], type[Predictor]]:
    """Class decorator recording a predictor under `name` (aliases, metadata); the class's `name` must agree.

    `min_points` is the fewest training points its `fit` (with its default cross-validation) works on: a search
    refuses an initial design smaller than that.
    """
    if isinstance(min_points, bool) or not isinstance(min_points, int) or min_points < 1:
        raise ValueError(f"predictor {name!r}: min_points must be a positive int, got {min_points!r}")
    return PREDICTORS.register_class(name, *aliases, min_points=min_points, **meta)


def create_predictor(name: str, *, xl: np.ndarray, xu: np.ndarray, seed: int = 0, **kwargs: object) -> Predictor:
    """Build the predictor registered under `name` for genomes bounded by `xl`, `xu`.

    An unknown name is a `UsageError` listing the choices.
    """
    return PREDICTORS.create(name, xl=xl, xu=xu, seed=seed, **kwargs)


def min_points(name: str) -> int:
    """The fewest training points predictor `name` fits on; an unknown name is a `UsageError` listing the choices."""
    return int(PREDICTORS.meta(name)["min_points"])


def list_predictors(aliases: bool = False) -> list[str]:
    """Registered predictor names, sorted; aliases (such as "adaptive" for "as") only when asked."""
    return PREDICTORS.names(aliases)
