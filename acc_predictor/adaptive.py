"""`as`: adaptive switching, which picks the pool member that ranks architectures best out of sample.

Every member of the pool is fitted on all the data with its own cross-validation (`Predictor.fit`, the same seeded
folds for all); the winner has the highest Kendall tau over its concatenated held-out predictions (ties go to the
earlier member of the pool) and is kept as fitted. The reported `report` is the winner's.

Why the pooled tau: upstream ranks by per-fold taus (mean minus standard deviation here before). A fold of a
100-row archive holds 20 rows, whose tau swings by +-0.1 from fold to fold, and the standard deviation penalty
then mostly measures that noise: on the 2,162-subnet ImageNet table it picked a member 0.03-0.05 worse than the
best one. The pooled tau uses every held-out prediction at once. The winner's number is still the best of several
noisy estimates, so slightly optimistic; an unbiased one would need nested cross-validation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from acc_predictor.base import MIN_CV_POINTS, CVReport, Predictor
from acc_predictor.registry import create_predictor, register_predictor

DEFAULT_POOL = ("rbf", "gp", "carts", "mlp")


@register_predictor(
    "as", "adaptive", help="adaptive switching: the best of the others by cross-validated tau", min_points=MIN_CV_POINTS
)
class AdaptiveSwitching(Predictor):
    """Fits and cross-validates every predictor of `pool` and keeps the one with the best held-out tau."""

    name = "as"
    needs_cv = True

    def __init__(
        self,
        xl: np.ndarray,
        xu: np.ndarray,
        seed: int = 0,
        cv_folds: int = 5,
        pool: Sequence[str] = DEFAULT_POOL,
    ) -> None:
        super().__init__(xl, xu, seed=seed, cv_folds=cv_folds)
        self.pool = tuple(pool)
        if not self.pool:
            raise ValueError("adaptive switching needs a non-empty pool of predictors")
        if self.name in self.pool or "adaptive" in self.pool:
            raise ValueError("adaptive switching cannot contain itself in its pool")
        for member in self.pool:  # an unknown name is a UsageError listing the choices, before any fitting
            self._member(member)
        self.winner: str | None = None
        self.scores: dict[str, CVReport] = {}
        self.model: Predictor | None = None

    def _member(self, name: str) -> Predictor:
        return create_predictor(name, xl=self.xl, xu=self.xu, seed=self.seed, cv_folds=self.cv_folds)

    def fit(self, x: np.ndarray, y: np.ndarray) -> AdaptiveSwitching:
        """Fit and cross-validate each pool member, keep the one whose held-out predictions rank best."""
        xf, yf = self.check_data(x, y)
        self._fitted = False
        fitted = {member: self._member(member).fit(xf, yf) for member in self.pool}
        self.scores = {member: model.report for member, model in fitted.items() if model.report is not None}
        self.winner = max(self.pool, key=lambda m: self.scores[m].tau)  # max keeps the first of equals
        self.report = self.scores[self.winner]
        self.model = fitted[self.winner]
        self._fitted = True
        return self

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:  # pragma: no cover - `fit` is overridden
        raise NotImplementedError

    def _predict(self, x: np.ndarray) -> np.ndarray:
        assert self.model is not None
        return self.model.predict(x)
