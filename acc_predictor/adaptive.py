"""`as`: adaptive switching, which picks the pool member that ranks architectures best out of sample.

Every member of the pool is cross-validated on the same seeded folds; the winner has the highest mean minus
standard deviation of its per-fold Kendall tau (ties go to the earlier member of the pool), and is refitted on all
the data. The reported `report` is the winner's cross-validation report from that selection. Note that it is
slightly optimistic, as the best of several noisy estimates always is; an unbiased number would need nested
cross-validation, which costs `folds` times more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from acc_predictor.base import MIN_CV_POINTS, CVReport, Predictor, cross_validate
from acc_predictor.registry import create_predictor, register_predictor

DEFAULT_POOL = ("rbf", "gp", "carts", "mlp")


@dataclass(frozen=True)
class MemberScore:
    """One pool member's cross-validation: its report, and the mean and standard deviation of per-fold taus."""

    report: CVReport
    fold_taus: tuple[float, ...]
    tau_mean: float
    tau_std: float

    @property
    def score(self) -> float:
        """What adaptive switching maximises: mean minus standard deviation of the per-fold Kendall tau."""
        return self.tau_mean - self.tau_std


@register_predictor(
    "as", "adaptive", help="adaptive switching: the best of the others by cross-validated tau", min_points=MIN_CV_POINTS
)
class AdaptiveSwitching(Predictor):
    """Cross-validates every predictor of `pool` and keeps the one with the best mean − std of per-fold tau."""

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
        self.scores: dict[str, MemberScore] = {}
        self.model: Predictor | None = None

    def _member(self, name: str) -> Predictor:
        return create_predictor(name, xl=self.xl, xu=self.xu, seed=self.seed, cv_folds=0)

    def fit(self, x: np.ndarray, y: np.ndarray) -> AdaptiveSwitching:
        """Cross-validate each pool member, keep the winner's report, refit the winner on all of (`x`, `y`)."""
        xf, yf = self.check_data(x, y)
        self._fitted = False
        self.scores = {}
        for member in self.pool:
            report, taus = cross_validate(lambda m=member: self._member(m), xf, yf, self.cv_folds, self.seed)
            self.scores[member] = MemberScore(report, tuple(taus), float(np.mean(taus)), float(np.std(taus)))
        self.winner = max(self.pool, key=lambda m: self.scores[m].score)  # max keeps the first of equals
        self.report = self.scores[self.winner].report
        self.model = self._member(self.winner).fit(xf, yf)
        self._fitted = True
        return self

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:  # pragma: no cover - `fit` is overridden
        raise NotImplementedError

    def _predict(self, x: np.ndarray) -> np.ndarray:
        assert self.model is not None
        return self.model.predict(x)
