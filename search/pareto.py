"""Pareto fronts, hypervolume and the spread-out choice of candidates; every objective is minimised.

`F` (pymoo's name) is always a 2-D float array `[n_points, n_objectives]`.

Hypervolume is measured against a reference point fixed once, from the initial design (`reference_point`), and
stored with the search. The objectives are *not* normalised by the data at hand: normalising by the current
archive's range would move the scale every iteration and make the values incomparable across iterations and
resumes. `hypervolume(..., ideal=...)` may normalise instead by a fixed box `(ideal, ref_point)`, which keeps the
values comparable and puts them in [0, 1].
"""

# ruff: noqa: N803  (pymoo's argument names: F is an objective matrix)
from __future__ import annotations

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

__all__ = [
    "dominated_by",
    "hypervolume",
    "non_dominated",
    "reference_point",
    "select_hypervolume",
    "select_spread",
]


def _matrix(values: np.ndarray, what: str = "F") -> np.ndarray:
    """`values` as a finite float64 matrix `[n, m]`; anything else is a `ValueError`."""
    f = np.asarray(values, dtype=float)
    if f.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array [n_points, n_objectives], got shape {f.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError(f"{what} holds NaN or infinite values")
    return f


def _fronts(f: np.ndarray) -> list[np.ndarray]:
    """Indices of each non-dominated front in rank order (equal points share a front)."""
    if len(f) == 0:
        return []
    return [np.sort(np.asarray(front, dtype=int)) for front in NonDominatedSorting().do(f)]


def non_dominated(F: np.ndarray, feasible: np.ndarray | None = None) -> np.ndarray:
    """Sorted indices of the rows of `F` on the first non-dominated front.

    Equal points do not dominate each other, so every copy of a front point is a member. With `feasible` (a
    boolean mask over the rows) the front is that of the feasible rows only; infeasible rows are never members.
    """
    f = _matrix(F)
    rows = np.arange(len(f))
    if feasible is not None:
        mask = np.asarray(feasible)
        if mask.dtype != bool or mask.shape != (len(f),):
            raise ValueError(f"feasible must be a boolean mask of shape ({len(f)},), got {mask.dtype} {mask.shape}")
        rows = rows[mask]
    if len(rows) == 0:
        return np.zeros(0, dtype=int)
    front = NonDominatedSorting().do(f[rows], only_non_dominated_front=True)
    return np.sort(rows[np.asarray(front, dtype=int)])


def reference_point(F: np.ndarray, margin: float = 0.1, eps: float = 1e-6) -> np.ndarray:
    """The hypervolume reference point: per objective, `max + margin · (max − min)` over the rows of `F`.

    Meant to be computed once, from the initial design, and kept. Where an objective is constant (`max == min`)
    the point is `max + eps · max(1, |max|)` instead, so that it stays strictly worse than every point of `F`.
    """
    f = _matrix(F)
    if len(f) == 0:
        raise ValueError("reference_point needs at least one point")
    if not margin >= 0.0 or not eps > 0.0:
        raise ValueError(f"margin must be >= 0 and eps > 0, got margin={margin}, eps={eps}")
    high, low = f.max(axis=0), f.min(axis=0)
    span = high - low
    offset = np.where(span > 0, margin * span, eps * np.maximum(1.0, np.abs(high)))
    return high + offset


def hypervolume(F: np.ndarray, ref_point: np.ndarray, ideal: np.ndarray | None = None) -> float:
    """The hypervolume dominated by the points of `F` and bounded by `ref_point` (pymoo's `HV`).

    Only points that strictly dominate `ref_point` (better in every objective) contribute; none does → 0.0.
    Without `ideal` the objectives are used as they are (not normalised), so the value is in the product of the
    objectives' units. With `ideal` each objective is mapped through the fixed box, `(f − ideal) / (ref_point −
    ideal)`, points better than `ideal` are clipped onto it, and the value lies in [0, 1].
    """
    f = _matrix(F)
    ref = np.asarray(ref_point, dtype=float)
    if ref.shape != (f.shape[1],) or not np.all(np.isfinite(ref)):
        raise ValueError(f"ref_point must be a finite vector of {f.shape[1]} values, got {ref_point!r}")
    f = f[np.all(f < ref[None, :], axis=1)]
    if len(f) == 0:
        return 0.0
    if ideal is not None:
        low = np.asarray(ideal, dtype=float)
        if low.shape != ref.shape or not np.all(low < ref):
            raise ValueError(f"ideal must be a vector strictly below ref_point {ref.tolist()}, got {ideal!r}")
        f = (np.maximum(f, low) - low) / (ref - low)
        ref = np.ones_like(ref)
    f = f[non_dominated(f)]
    return float(HV(ref_point=ref)(f))


def dominated_by(F: np.ndarray, F_anchor: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows of `F` that some row of `F_anchor` dominates (no worse anywhere, better somewhere)."""
    f, anchors = _matrix(F), _matrix(F_anchor, "F_anchor")
    if len(anchors) == 0 or len(f) == 0:
        return np.zeros(len(f), dtype=bool)
    if anchors.shape[1] != f.shape[1]:
        raise ValueError(f"F_anchor has {anchors.shape[1]} objectives, F {f.shape[1]}")
    no_worse = (anchors[None, :, :] <= f[:, None, :]).all(axis=2)
    better = (anchors[None, :, :] < f[:, None, :]).any(axis=2)
    return (no_worse & better).any(axis=1)


def select_spread(F_candidates: np.ndarray, n: int, F_anchor: np.ndarray | None = None) -> np.ndarray:
    """Indices of `n` candidates spread along their front in every objective, in the order they were chosen.

    Objectives are normalised to [0, 1] by the min and max over candidates and anchors (a constant objective
    counts for nothing). Candidates that no anchor dominates come first: a candidate behind the anchors' front
    could at best fill a gap the front already covers. Within each of these two groups candidates are taken
    front by front: first the group's non-dominated set, then, only while fewer than `n` are chosen, the next
    fronts by rank. Within a front the choice is greedy
    farthest-point (maximin Euclidean distance) to everything known: the anchors (e.g. the archive's current
    front, so that candidates far from what is already known come first) and the candidates chosen so far.
    Without anchors the first choices are the front's extremes, the best candidate of each objective in
    objective order. Ties go to the lower index, so the choice is deterministic. Fewer than `n` indices come
    back when there are fewer candidates.
    """
    f = _matrix(F_candidates, "F_candidates")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    n = min(int(n), len(f))
    if n == 0:
        return np.zeros(0, dtype=int)
    known = np.zeros((0, f.shape[1])) if F_anchor is None else _matrix(F_anchor, "F_anchor")
    if known.shape[1] != f.shape[1]:
        raise ValueError(f"F_anchor has {known.shape[1]} objectives, F_candidates {f.shape[1]}")

    both = np.vstack([f, known])
    low, span = both.min(axis=0), np.ptp(both, axis=0)
    span[span == 0] = 1.0
    x, anchors = (f - low) / span, (known - low) / span

    # distance from every candidate to the nearest known point (the anchors, then the chosen candidates)
    nearest = np.full(len(f), np.inf)
    for anchor in anchors:
        nearest = np.minimum(nearest, np.linalg.norm(x - anchor, axis=1))
    chosen: list[int] = []

    def take(i: int) -> None:
        nonlocal nearest
        chosen.append(i)
        nearest = np.minimum(nearest, np.linalg.norm(x - x[i], axis=1))

    behind = dominated_by(f, known)
    groups = [np.flatnonzero(~behind), np.flatnonzero(behind)]
    fronts = [group[front] for group in groups for front in _fronts(f[group])]
    for front in fronts:
        pool = [int(i) for i in front]
        if not chosen and len(anchors) == 0:
            for j in range(f.shape[1]):  # the extremes; ties go to the better point, then the lower index
                best = min(pool, key=lambda i, j=j: (f[i, j], *f[i], i))
                if best not in chosen and len(chosen) < n:
                    take(best)
            pool = [i for i in pool if i not in chosen]
        while pool and len(chosen) < n:
            best = max(pool, key=lambda i: (nearest[i], -i))
            take(best)
            pool.remove(best)
        if len(chosen) == n:
            break
    return np.asarray(chosen, dtype=int)


def select_hypervolume(F_candidates: np.ndarray, n: int, F_anchor: np.ndarray, ref_point: np.ndarray) -> np.ndarray:
    """Indices of up to `n` candidates chosen greedily by the hypervolume each adds to the anchors and earlier picks.

    Each step takes the candidate whose addition to the anchors (e.g. the archive's front) and the candidates
    chosen so far raises the hypervolume under `ref_point` the most (ties to the lower index). When no candidate
    adds anything the rest come from `select_spread` against everything chosen, so `n` come back whenever there
    are `n` candidates.
    """
    f = _matrix(F_candidates, "F_candidates")
    known = _matrix(F_anchor, "F_anchor")
    n = min(max(int(n), 0), len(f))
    chosen: list[int] = []
    base = hypervolume(known, ref_point) if len(known) else 0.0
    while len(chosen) < n:
        current = np.vstack([known, f[chosen]])
        rest = [i for i in range(len(f)) if i not in chosen]
        gains = [hypervolume(np.vstack([current, f[i]]), ref_point) - base for i in rest]
        best = int(np.argmax(gains))
        if gains[best] <= 0:
            break
        chosen.append(rest[best])
        base += gains[best]
    if len(chosen) < n:
        rest = np.array([i for i in range(len(f)) if i not in chosen], dtype=int)
        more = select_spread(f[rest], n - len(chosen), np.vstack([known, f[chosen]]))
        chosen += [int(rest[i]) for i in more]
    return np.asarray(chosen, dtype=int)
