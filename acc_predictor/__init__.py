"""Surrogate accuracy predictors over integer genomes, each reporting out-of-sample cross-validated quality."""

from acc_predictor import adaptive as _adaptive  # noqa: F401  (registers "as")
from acc_predictor import carts as _carts  # noqa: F401  (registers "carts")
from acc_predictor import gp as _gp  # noqa: F401  (registers "gp")
from acc_predictor import mlp as _mlp  # noqa: F401  (registers "mlp")
from acc_predictor import rbf as _rbf  # noqa: F401  (registers "rbf")
from acc_predictor.base import CVReport, Predictor, cross_validate
from acc_predictor.registry import PREDICTORS, create_predictor, list_predictors, min_points, register_predictor

__all__ = [
    "PREDICTORS",
    "CVReport",
    "Predictor",
    "create_predictor",
    "cross_validate",
    "list_predictors",
    "min_points",
    "register_predictor",
]
