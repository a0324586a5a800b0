"""The `Predictor` interface and honest (out-of-sample) cross-validation of surrogate accuracy predictors.

A predictor regresses whatever target it is given (top-1 accuracy or error, any float) on architecture inputs:
integer genomes, or the real-valued surrogate features a search derives from them (`search/surrogate.py`), each
column bounded by `xl`, `xu`. Every `fit` fits on all the data, then measures the model by k-fold cross-validation
and keeps the result in `report`: the numbers a search prints are out-of-sample, never the inflated in-sample
correlation upstream reports.

Small data sets: cross-validation uses `k = min(folds, n // 2)` folds, so each held-out fold holds at least two
points and its Kendall tau is defined (leave-one-out folds would all have an undefined tau). It therefore needs at
least four points; fewer is a `ValueError`.

Threads: fitting and predicting run with one BLAS thread (`threadpoolctl`, restored afterwards). The matrices here
have a few hundred rows, too small to gain from threads, and on a machine whose cores are busy (a training job
beside the search, pytest-xdist workers) multi-threaded BLAS is 10-100 times slower than a single thread.
"""

from __future__ import annotations

import dataclasses
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ClassVar, Self

import numpy as np
from scipy.stats import kendalltau, spearmanr
from sklearn.model_selection import KFold
from threadpoolctl import ThreadpoolController

MIN_CV_POINTS = 4
"""Cross-validation needs two folds of at least two points each."""


@dataclasses.dataclass(frozen=True)
class CVReport:
    """Out-of-sample quality of a predictor over the concatenated held-out predictions of `n_folds` folds."""

    rmse: float
    rho: float
    tau: float
    n_folds: int
    n: int

    def as_dict(self) -> dict[str, float | int]:
        """The report as a plain JSON-serialisable dict."""
        return dataclasses.asdict(self)


class Predictor(ABC):
    """A surrogate of accuracy (or error) over inputs (genomes or features) with per-column bounds `xl`, `xu`.

    Subclasses implement `_fit` and `_predict` on validated float arrays, and keep every constructor argument in
    an attribute of the same name so that `clone` can build a fresh, unfitted copy. Everything random is drawn
    from `seed`: the same seed on the same data gives the same predictions.
    """

    name: ClassVar[str] = ""
    needs_cv: ClassVar[bool] = False
    """True for predictors that choose by cross-validation and so cannot run with `cv_folds=0`."""

    def __init__(self, xl: np.ndarray, xu: np.ndarray, seed: int = 0, cv_folds: int = 5) -> None:
        xl_arr = np.asarray(xl, dtype=float)
        xu_arr = np.asarray(xu, dtype=float)
        if xl_arr.ndim != 1 or xl_arr.shape != xu_arr.shape or xl_arr.size == 0:
            raise ValueError(f"xl and xu must be non-empty vectors of equal length, got {xl_arr.shape}, {xu_arr.shape}")
        if not (np.all(np.isfinite(xl_arr)) and np.all(np.isfinite(xu_arr)) and np.all(xl_arr <= xu_arr)):
            raise ValueError("gene bounds must be finite with xl <= xu")
        if cv_folds != 0 and cv_folds < 2:
            raise ValueError(f"cv_folds must be 0 (no cross-validation) or at least 2, got {cv_folds}")
        if self.needs_cv and cv_folds == 0:
            raise ValueError(f"predictor {self.name!r} chooses by cross-validation; it needs cv_folds >= 2")
        self.xl = xl_arr
        self.xu = xu_arr
        self.seed = int(seed)
        self.cv_folds = int(cv_folds)
        self.report: CVReport | None = None
        self._fitted = False

    @property
    def n_var(self) -> int:
        """Number of genes."""
        return self.xl.size

    def scale(self, x: np.ndarray) -> np.ndarray:
        """Genomes mapped to [0, 1] per gene by the bounds (a gene with `xl == xu` maps to 0)."""
        span = np.where(self.xu > self.xl, self.xu - self.xl, 1.0)
        return (x - self.xl) / span

    def clone(self, **overrides: object) -> Self:
        """A fresh, unfitted predictor with the same constructor arguments, except `overrides`."""
        params = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        kwargs = {p: getattr(self, p) for p in params}
        kwargs.update(overrides)
        return type(self)(**kwargs)

    def fit(self, x: np.ndarray, y: np.ndarray) -> Self:
        """Fit on all of (`x`, `y`), then cross-validate into `report` (unless `cv_folds == 0`)."""
        xf, yf = self.check_data(x, y)
        self._fitted = False
        with single_threaded():
            self._fit(xf, yf)
            self._fitted = True
            self.report = None
            if self.cv_folds:
                self.report, _ = cross_validate(self.fold_predictor, xf, yf, self.cv_folds, self.seed)
        return self

    def fold_predictor(self) -> Predictor:
        """A fresh predictor that cross-validation fits on each fold (by default an unfitted clone)."""
        return self.clone(cv_folds=0)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted targets of genomes `x` (shape [n, n_var]), as a float vector of shape [n]."""
        if not self._fitted:
            raise RuntimeError(f"predictor {self.name!r} is not fitted; call fit(x, y) first")
        xf = self.check_genomes(x)
        if len(xf) == 0:
            return np.empty(0)
        with single_threaded():
            return np.asarray(self._predict(xf), dtype=float).reshape(-1)

    def check_genomes(self, x: np.ndarray) -> np.ndarray:
        """`x` as a float [n, n_var] array after checking shape, finiteness and bounds; else `ValueError`."""
        arr = np.asarray(x)
        if arr.ndim != 2 or arr.shape[1] != self.n_var:
            raise ValueError(f"genomes must be a 2-D array with {self.n_var} columns, got shape {arr.shape}")
        if arr.dtype.kind not in "iub" and not (arr.dtype.kind == "f" and np.all(np.isfinite(arr))):
            raise ValueError(f"inputs must be finite numbers, got dtype {arr.dtype}")
        xf = arr.astype(float)
        bad = (xf < self.xl) | (xf > self.xu)
        if bad.any():
            row, gene = np.argwhere(bad)[0]
            raise ValueError(
                f"genome {row} gene {gene} = {xf[row, gene]:g} is outside [{self.xl[gene]:g}, {self.xu[gene]:g}]"
            )
        return xf

    def check_data(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Validated training data: genomes as by `check_genomes`, finite targets of the same length, n >= 2."""
        xf = self.check_genomes(x)
        yf = check_targets(y, len(xf))
        if len(xf) < 2:
            raise ValueError(f"a predictor needs at least 2 training points, got {len(xf)}")
        if self.cv_folds and len(xf) < MIN_CV_POINTS:
            raise ValueError(
                f"cross-validation needs at least {MIN_CV_POINTS} points, got {len(xf)}; pass cv_folds=0 to skip it"
            )
        return xf, yf

    @abstractmethod
    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        """Fit on validated float inputs `x` [n, n_var] and finite targets `y` [n]."""

    @abstractmethod
    def _predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions for validated float inputs `x` [n, n_var]."""


_CONTROLLER: list[ThreadpoolController] = []


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run the body with one BLAS thread, restoring the previous limits afterwards (see the module docstring).

    One controller, made on first use, serves every call: building one scans every loaded library (6 ms with torch
    loaded), which a search step would otherwise pay on each of its hundred predictor calls.
    """
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    with _CONTROLLER[0].limit(limits=1, user_api="blas"):
        yield


def check_targets(y: np.ndarray, n: int) -> np.ndarray:
    """`y` as a finite float vector of length `n`; else `ValueError`."""
    yf = np.asarray(y, dtype=float)
    if yf.ndim == 2 and yf.shape[1] == 1:
        yf = yf[:, 0]
    if yf.ndim != 1 or yf.shape[0] != n:
        raise ValueError(f"targets must be a vector of {n} values (one per genome), got shape {yf.shape}")
    if not np.all(np.isfinite(yf)):
        raise ValueError("targets must be finite (no NaN or inf)")
    return yf


def correlations(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
    """Spearman rho and Kendall tau of predictions against targets; an undefined (NaN) correlation counts as 0.

    Correlations are undefined when either side is constant (a predictor that predicts the mean, a fold whose
    targets tie), and scoring them 0 ranks such a predictor as no better than chance.
    """
    if len(y_true) < 2 or np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
        return 0.0, 0.0
    rho = float(spearmanr(y_true, y_pred).statistic)
    tau = float(kendalltau(y_true, y_pred).statistic)
    return (0.0 if np.isnan(rho) else rho), (0.0 if np.isnan(tau) else tau)


def cv_folds_for(n: int, folds: int) -> int:
    """The number of folds actually used on `n` points: `min(folds, n // 2)` so every fold has two points."""
    if folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {folds}")
    if n < MIN_CV_POINTS:
        raise ValueError(f"cross-validation needs at least {MIN_CV_POINTS} points, got {n}")
    return min(folds, n // 2)


def cross_validate(
    make: Callable[[], Predictor], x: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0
) -> tuple[CVReport, list[float]]:
    """Out-of-sample quality of the predictors that `make` builds, by shuffled k-fold cross-validation.

    Each fold fits a fresh predictor from `make()` on the other folds and predicts the held-out one. Returns the
    report over the concatenated held-out predictions (RMSE, Spearman rho, Kendall tau) and the Kendall tau of
    each fold on its own (what adaptive switching ranks by). With fewer than `2 * folds` points the number of
    folds drops to `n // 2` (see the module docstring).
    """
    xa = np.asarray(x)
    if xa.ndim != 2:
        raise ValueError(f"genomes must be a 2-D array, got shape {xa.shape}")
    ya = check_targets(y, len(xa))
    k = cv_folds_for(len(xa), folds)
    pred = np.empty(len(xa))
    fold_taus: list[float] = []
    for train, test in KFold(n_splits=k, shuffle=True, random_state=seed).split(xa):
        model = make().fit(xa[train], ya[train])
        pred[test] = model.predict(xa[test])
        fold_taus.append(correlations(ya[test], pred[test])[1])
    rho, tau = correlations(ya, pred)
    rmse = float(np.sqrt(np.mean((pred - ya) ** 2)))
    return CVReport(rmse=rmse, rho=rho, tau=tau, n_folds=k, n=len(xa)), fold_taus
