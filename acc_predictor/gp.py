"""`gp`: Gaussian-process regression (scikit-learn) with an ARD Matérn kernel on inputs scaled to [0, 1].

The kernel is `C · Matern(ν, one length scale per input) + White`, ν = 3/2 by default (5/2 by `nu=2.5`): on the
2,162-subnet ImageNet table of `bench/predictors.py` the rougher 3/2 ranks held-out subnets better (Kendall tau
0.930 against 0.924 at 100 training rows, 0.919 against 0.913 at 50, with the search's surrogate features).
With `normalize_y=True` the targets are standardised, so the amplitude and noise bounds are relative to the
target's spread. Hyper-parameters maximise the log marginal likelihood from the default start plus `n_restarts`
random starts drawn by scikit-learn from `random_state=seed`. A gene that is constant in the data has a zero
likelihood gradient in its length scale, so the optimiser simply leaves it where it is.

Speed: scikit-learn evaluates the likelihood gradient through an [n, n, n_var] tensor (0.26 s per evaluation at
500 points and 46 genes, about a hundred evaluations per optimisation). The `optimizer` we hand to
`GaussianProcessRegressor` therefore runs scikit-learn's own L-BFGS-B on `MaternARDObjective`, the same
function (same kernel, same `alpha` jitter, same target normalisation) with the gradient reduced to matrix
products, O(n² · n_var) through BLAS and no large temporaries, which is 10-20 times faster. A test checks that
its value and gradient equal scikit-learn's `log_marginal_likelihood`. Everything else (restarts, the final
Cholesky factor, prediction) is scikit-learn's.

Above `hyper_rows` rows (150) the hyper-parameters are fitted on a seeded subset of that many rows and the
posterior then conditions on all of them: the likelihood costs O(n³) per evaluation, and at 300 rows this keeps a
fit with its report at 0.5 s instead of 2.3 s, for a held-out tau of 0.953 instead of 0.958 on the ImageNet table.

Cross-validation (the `report`) fits each fold's kernel on that fold's training rows alone, from the default start
without restarts and to a looser tolerance (`FOLD_FTOL`): on the ImageNet table that halves the report's cost (0.58 s
to 0.26 s at 300 rows) and moves its Kendall tau by less than 0.002. Keeping the kernel fitted on all rows would
be five times cheaper but is not out of sample: on pure noise that kernel interpolates every row, held-out ones
included, and the report showed tau 0.37.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import scipy.optimize
from scipy.linalg import cho_solve, cholesky
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Kernel, Matern, WhiteKernel

from acc_predictor.base import MIN_CV_POINTS, Predictor
from acc_predictor.registry import register_predictor

LENGTH_SCALE_BOUNDS = (0.1, 100.0)
"""On the unit box: from a fifth of one choice step (0.5 for a 3-choice gene) to "this gene does not matter".

A lower bound of 0.05 let the optimiser settle, on some folds of a purely linear target, in a local optimum that
makes one gene's neighbouring choices uncorrelated (log-likelihood -45 against +40), costing 0.4 of fold tau.
"""
AMPLITUDE_BOUNDS = (1e-2, 1e2)
NOISE_BOUNDS = (1e-6, 1.0)
JITTER = 1e-10
"""scikit-learn's default `alpha`, added to the kernel diagonal."""
MAX_ITER = 200
"""L-BFGS-B iterations per start; the likelihood has flattened long before on the problems we tried."""
FTOL = 2.220446049250313e-09
"""L-BFGS-B's relative-decrease stopping tolerance for the fit that predicts (scipy's default)."""
FOLD_FTOL = 1e-4
"""The same for cross-validation folds: they stop once an iteration gains less than 0.01 % of the likelihood."""
HYPER_ROWS = 150
"""At most this many rows (a seeded subset) choose the hyper-parameters; the posterior then uses every row."""


NUS = (1.5, 2.5)
"""The Matérn smoothness values with a fast likelihood."""


@register_predictor("gp", help="Gaussian process (ARD Matérn-3/2)", min_points=MIN_CV_POINTS)
class GPPredictor(Predictor):
    """Gaussian process with an ARD Matérn plus white-noise kernel, fitted by marginal likelihood."""

    name = "gp"

    def __init__(
        self,
        xl: np.ndarray,
        xu: np.ndarray,
        seed: int = 0,
        cv_folds: int = 5,
        n_restarts: int = 1,
        nu: float = 1.5,
        hyper_rows: int = HYPER_ROWS,
        ftol: float = FTOL,
    ) -> None:
        super().__init__(xl, xu, seed=seed, cv_folds=cv_folds)
        if n_restarts < 0:
            raise ValueError(f"n_restarts must be >= 0, got {n_restarts}")
        if nu not in NUS:
            raise ValueError(f"nu must be one of {NUS}, got {nu}")
        if hyper_rows < MIN_CV_POINTS:
            raise ValueError(f"hyper_rows must be >= {MIN_CV_POINTS}, got {hyper_rows}")
        self.n_restarts = int(n_restarts)
        self.nu = float(nu)
        if not 0 < ftol < 1:
            raise ValueError(f"ftol must be in (0, 1), got {ftol}")
        self.hyper_rows = int(hyper_rows)
        self.ftol = float(ftol)
        self.model: GaussianProcessRegressor | None = None

    def kernel(self) -> Kernel:
        """The unfitted kernel, at its default hyper-parameters."""
        matern = Matern(length_scale=np.ones(self.n_var), length_scale_bounds=LENGTH_SCALE_BOUNDS, nu=self.nu)
        return ConstantKernel(1.0, AMPLITUDE_BOUNDS) * matern + WhiteKernel(1e-2, NOISE_BOUNDS)

    def fold_predictor(self) -> GPPredictor:
        """A fresh predictor for a cross-validation fold: its own likelihood fit, from the default start only."""
        return self.clone(cv_folds=0, n_restarts=0, ftol=max(self.ftol, FOLD_FTOL))

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        z = self.scale(x)
        rows = np.arange(len(z))
        if len(z) > self.hyper_rows:
            rows = np.sort(np.random.default_rng(self.seed).choice(len(z), self.hyper_rows, replace=False))
        fitted = self._regressor(self.kernel(), MaternARDObjective(z[rows], y[rows], self.nu))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fitted.fit(z[rows], y[rows])
        self.model = fitted if len(rows) == len(z) else self._regressor(fitted.kernel_, None).fit(z, y)

    def _regressor(self, kernel: Kernel, objective: MaternARDObjective | None) -> GaussianProcessRegressor:
        """scikit-learn's GP on `kernel`, optimising it on `objective` (None: kernel kept as given)."""
        return GaussianProcessRegressor(
            kernel=kernel,
            alpha=JITTER,
            optimizer=None if objective is None else _lbfgs_on(objective, self.ftol),
            normalize_y=True,
            n_restarts_optimizer=self.n_restarts if objective is not None else 0,
            random_state=self.seed,
        )

    def _predict(self, x: np.ndarray) -> np.ndarray:
        assert self.model is not None
        return self.model.predict(self.scale(x))


class MaternARDObjective:
    """Negative log marginal likelihood of `C · Matern(ν, ARD) + White` and its gradient in log hyper-parameters.

    `theta = [log C, log l_1 .. log l_d, log noise]`, the order of scikit-learn's `kernel.theta`; targets are
    normalised as `normalize_y=True` does it and `JITTER` is added to the diagonal, so `value_and_grad(theta)`
    equals `-gpr.log_marginal_likelihood(theta, eval_gradient=True)`.
    """

    def __init__(self, z: np.ndarray, y: np.ndarray, nu: float = 1.5) -> None:
        if nu not in NUS:
            raise ValueError(f"nu must be one of {NUS}, got {nu}")
        std = np.std(y)
        self.nu = nu
        self.z = z
        self.y = (y - np.mean(y)) / (std if std >= 10 * np.finfo(float).eps else 1.0)

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Negative log marginal likelihood at `theta` and its gradient."""
        n = len(self.y)
        amp, scales, noise = np.exp(theta[0]), np.exp(theta[1:-1]), np.exp(theta[-1])
        a = self.z / scales
        sq = np.sum(a * a, axis=1)
        r = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * (a @ a.T), 0.0))
        np.fill_diagonal(r, 0.0)
        c = np.sqrt(2.0 * self.nu)
        cr = c * r
        decay = np.exp(-cr)
        # k = amp · p(cr) · e^{-cr}; d k / d log l_j = amp · q(cr) · e^{-cr} · (a_ij - a_kj)², with
        # p, q = 1 + cr, 3 (ν = 3/2) and 1 + cr + (cr)²/3, 5/3 · (1 + cr) (ν = 5/2).
        if self.nu == 1.5:
            k_matern, dk = amp * (1.0 + cr) * decay, amp * 3.0 * decay
        else:
            k_matern, dk = amp * (1.0 + cr + cr * cr / 3.0) * decay, amp * 5.0 / 3.0 * (1.0 + cr) * decay
        k = k_matern.copy()
        k.flat[:: n + 1] += noise + JITTER
        try:
            chol = cholesky(k, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            return np.inf, np.zeros_like(theta)
        alpha = cho_solve((chol, True), self.y, check_finite=False)
        lml = -0.5 * self.y @ alpha - np.log(np.diag(chol)).sum() - n / 2 * np.log(2 * np.pi)

        w = np.outer(alpha, alpha) - cho_solve((chol, True), np.eye(n), check_finite=False)
        grad = np.empty_like(theta)
        grad[0] = 0.5 * np.sum(w * k_matern)
        m = w * dk  # summed against the squared differences by matrix products
        grad[1:-1] = m.sum(axis=1) @ (a * a) - np.sum(a * (m @ a), axis=0)
        grad[-1] = 0.5 * noise * np.trace(w)
        return -float(lml), -grad


def _lbfgs_on(objective: MaternARDObjective, ftol: float) -> Callable[..., tuple[np.ndarray, float]]:
    """A `GaussianProcessRegressor` optimizer running scikit-learn's L-BFGS-B on the fast `objective` to `ftol`."""

    def optimizer(obj_func: object, initial_theta: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, float]:
        res = scipy.optimize.minimize(
            objective.value_and_grad,
            initial_theta,
            method="L-BFGS-B",
            jac=True,
            bounds=bounds,
            options={"maxiter": MAX_ITER, "ftol": ftol},
        )
        return res.x, float(res.fun)

    return optimizer
