"""`rbf`: upstream's radial-basis-function interpolant, pySOT's cubic kernel with a linear polynomial tail.

pySOT's `RBFInterpolant` maps inputs to the unit box by the bounds it is given (`(x - lb) / (ub - lb)`) and adds
`eta = 1e-6` to the diagonal of the kernel matrix, so it solves

    [[0, Pᵀ], [P, Φ + ηI]] [λ; c] = [0; y]

which is exactly `scipy.interpolate.RBFInterpolator(kernel="cubic", degree=1, smoothing=eta)` on the same scaled
points (the tests check that).

Two things upstream crashes on are handled here:

- duplicate genomes: their targets are averaged first (duplicate rows would make the system singular up to eta);
- a linear tail the data cannot determine (fewer distinct genomes than genes + 1, or genes that are constant or
  collinear in the data, as in small cross-validation folds): the tail is then restricted to the directions the
  data spans (`_SpannedLinearTail`), which keeps the system non-singular and leaves the interpolant on the data's
  affine hull unchanged. With full-rank data the tail is pySOT's own `LinearTail`.
"""

from __future__ import annotations

import warnings

import numpy as np

from acc_predictor.base import MIN_CV_POINTS, Predictor
from acc_predictor.registry import register_predictor

with warnings.catch_warnings():  # pySOT imports pyDOE2, which imports the deprecated `imp` module
    warnings.simplefilter("ignore", DeprecationWarning)
    from pySOT.surrogate import CubicKernel, LinearTail, RBFInterpolant, Tail

RANK_RTOL = 1e-8
"""Singular values below this fraction of the largest count as directions the data does not span."""


@register_predictor("rbf", help="cubic radial basis functions (pySOT)", min_points=MIN_CV_POINTS)
class RBFPredictor(Predictor):
    """Cubic RBF interpolant with a linear tail (pySOT), on genomes scaled to the unit box by the bounds."""

    name = "rbf"

    def __init__(self, xl: np.ndarray, xu: np.ndarray, seed: int = 0, cv_folds: int = 5, eta: float = 1e-6) -> None:
        super().__init__(xl, xu, seed=seed, cv_folds=cv_folds)
        if not eta >= 0:
            raise ValueError(f"eta must be non-negative, got {eta}")
        self.eta = float(eta)
        self.model: RBFInterpolant | None = None

    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The bounds given to pySOT: a gene with `xl == xu` gets a unit span so that scaling never divides by zero."""
        return self.xl, np.where(self.xu > self.xl, self.xu, self.xl + 1.0)

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        x_unique, inverse = np.unique(x, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        yu = np.bincount(inverse, weights=y) / np.bincount(inverse)
        lb, ub = self._bounds()
        tail = _linear_tail((x_unique - lb) / (ub - lb))
        self.model = RBFInterpolant(self.n_var, lb, ub, kernel=CubicKernel(), tail=tail, eta=self.eta)
        self.model.add_points(x_unique, yu)

    def _predict(self, x: np.ndarray) -> np.ndarray:
        assert self.model is not None
        return self.model.predict(x)[:, 0]


def _linear_tail(z: np.ndarray) -> Tail:
    """The tail for scaled points `z`: pySOT's `LinearTail` if they determine it, else one over the span of `z`."""
    dim = z.shape[1]
    centre = z.mean(axis=0)
    _, s, vt = np.linalg.svd(z - centre, full_matrices=False)
    rank = int(np.sum(s > RANK_RTOL * s[0])) if s.size and s[0] > 0 else 0
    if rank == dim:
        return LinearTail(dim)
    return _SpannedLinearTail(centre, vt[:rank])


class _SpannedLinearTail(Tail):
    """A linear polynomial tail over the affine hull of the data: basis `{1, (x - centre) · v_i}`.

    The `v_i` are orthonormal directions spanned by the centred data, so the tail matrix has full column rank and
    a cubic kernel stays conditionally positive definite on its null space: the RBF system is non-singular.
    """

    def __init__(self, centre: np.ndarray, directions: np.ndarray) -> None:
        super().__init__()
        self.degree = 1
        self.dim = centre.size
        self.dim_tail = 1 + directions.shape[0]
        self.centre = centre
        self.directions = directions

    def eval(self, x: np.ndarray) -> np.ndarray:
        """Tail basis at points `x` [n, dim]: [n, 1 + rank]."""
        x = np.atleast_2d(x)
        return np.hstack((np.ones((x.shape[0], 1)), (x - self.centre) @ self.directions.T))

    def deriv(self, x: np.ndarray) -> np.ndarray:
        """Derivative of the basis at one point, laid out [dim, dim_tail] as pySOT's `LinearTail.deriv` does."""
        return np.vstack((np.zeros((1, self.dim)), self.directions)).T
