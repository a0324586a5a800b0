"""`carts`: an ensemble of regression trees, each split drawn from a random subset of the genes.

Upstream fits 5,000 separate scikit-learn trees in a Python loop, each on a random subset of features, which takes
minutes. The same idea (many de-correlated trees, each seeing a random fraction of the genes) is what a random
forest does in compiled code: `RandomForestRegressor` with `max_features` as the fraction of genes per split and
bootstrap resampling, single-threaded so that it is deterministic for a seed.

Defaults: scikit-learn spends about a millisecond per tree outside the split search, so 300 trees (rather than
500) keep a fit on 500 architectures near 0.4 s; on our synthetic OFA targets 500 trees ranked no better. A third
of the genes per split and bootstrap samples of half the data de-correlate the trees, which ranked held-out
architectures better than the scikit-learn defaults (all genes, full-size bootstrap).
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestRegressor

from acc_predictor.base import MIN_CV_POINTS, Predictor
from acc_predictor.registry import register_predictor


@register_predictor("carts", help="random forest of regression trees", min_points=MIN_CV_POINTS)
class CARTsPredictor(Predictor):
    """Random forest of `n_estimators` bootstrapped regression trees over `max_features` of the genes per split."""

    name = "carts"

    def __init__(
        self,
        xl: np.ndarray,
        xu: np.ndarray,
        seed: int = 0,
        cv_folds: int = 5,
        n_estimators: int = 300,
        max_features: float = 0.3,
        max_samples: float = 0.5,
    ) -> None:
        super().__init__(xl, xu, seed=seed, cv_folds=cv_folds)
        if n_estimators < 1:
            raise ValueError(f"n_estimators must be >= 1, got {n_estimators}")
        if not (0.0 < max_features <= 1.0 and 0.0 < max_samples <= 1.0):
            raise ValueError(
                f"max_features and max_samples are fractions in (0, 1], got {max_features} and {max_samples}"
            )
        self.n_estimators = int(n_estimators)
        self.max_features = float(max_features)
        self.max_samples = float(max_samples)
        self.model: RandomForestRegressor | None = None

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        self.model = RandomForestRegressor(
            n_estimators=self.n_estimators,
            max_features=self.max_features,
            bootstrap=True,
            max_samples=self.max_samples if self.max_samples < 1.0 else None,
            random_state=self.seed,
            n_jobs=1,
        )
        self.model.fit(x, y)

    def _predict(self, x: np.ndarray) -> np.ndarray:
        assert self.model is not None
        return self.model.predict(x)
