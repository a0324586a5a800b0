"""Figures of a search: the Pareto front of an iteration and the hypervolume over iterations.

Figures are drawn with matplotlib's object API on an Agg canvas (no `pyplot`, no global backend switch, never a
window) and written atomically: to a temporary file next to the target, then renamed onto it.
"""

# ruff: noqa: N803  (pymoo's argument names: F is an objective matrix)
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from utils.io import atomic_write

__all__ = ["new_figure", "plot_front", "plot_hypervolume", "save_figure"]

_DPI = 120


def new_figure(figsize: tuple[float, float] = (6.4, 4.8)) -> Figure:
    """An empty figure on its own Agg canvas."""
    figure = Figure(figsize=figsize, dpi=_DPI, layout="tight")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: str | os.PathLike[str]) -> Path:
    """Write `figure` as a PNG at `path`, atomically."""
    return atomic_write(path, lambda f: figure.savefig(f, format="png", dpi=_DPI), binary=True)


def _points(values: np.ndarray | None, n_obj: int, what: str) -> np.ndarray:
    """`values` as a float matrix `[n, n_obj]` (None → no rows); another width is a `ValueError`."""
    if values is None:
        return np.zeros((0, n_obj))
    f = np.asarray(values, dtype=float)
    if f.size == 0:
        return np.zeros((0, n_obj))
    if f.ndim != 2 or f.shape[1] != n_obj:
        raise ValueError(f"{what} must have shape [n, {n_obj}], got {f.shape}")
    return f


def _label(name: str, points: np.ndarray) -> str:
    """`name` for the legend, or matplotlib's no-legend label when there are no points to show."""
    return name if len(points) else "_nolegend_"


def plot_front(
    path: str | os.PathLike[str],
    F_archive: np.ndarray,
    F_front: np.ndarray,
    objectives_labels: tuple[str, ...],
    F_candidates: np.ndarray | None = None,
    F_chosen: np.ndarray | None = None,
    chosen_labels: Sequence[str] | None = None,
    title: str = "",
    chosen_at: Sequence[int] | None = None,
) -> Path:
    """Scatter the archive (grey), its front (line and markers), and this iteration's candidates and choices.

    With two objectives the x-axis is the second objective and the y-axis the first (top-1 error), as upstream
    plots. With one objective the y-axis is that objective against the evaluation index: the archive in
    evaluation order with its running best, the front as a horizontal line, and the candidates and chosen points
    placed after the archive, at the indices where they will be evaluated, or, for chosen points already in the
    archive, at their indices `chosen_at`. `chosen_labels` annotate the chosen points. The PNG is written
    atomically; returns its path.
    """
    archive = np.asarray(F_archive, dtype=float)
    if archive.ndim != 2 or archive.shape[1] not in (1, 2):
        raise ValueError(f"plot_front draws one or two objectives: F_archive must be [n, 1|2], got {archive.shape}")
    n_obj = archive.shape[1]
    if len(objectives_labels) < n_obj:
        raise ValueError(f"need {n_obj} objective labels, got {objectives_labels!r}")
    front = _points(F_front, n_obj, "F_front")
    candidates = _points(F_candidates, n_obj, "F_candidates")
    chosen = _points(F_chosen, n_obj, "F_chosen")
    if chosen_labels is not None and len(chosen_labels) != len(chosen):
        raise ValueError(f"{len(chosen_labels)} chosen_labels for {len(chosen)} chosen points")
    if chosen_at is not None and len(chosen_at) != len(chosen):
        raise ValueError(f"{len(chosen_at)} chosen_at indices for {len(chosen)} chosen points")

    figure = new_figure()
    ax = figure.add_subplot()
    if n_obj == 2:
        ax.scatter(archive[:, 1], archive[:, 0], s=12, c="0.6", label="archive")
        order = np.lexsort((front[:, 0], front[:, 1]))
        ax.plot(front[order, 1], front[order, 0], "o-", c="tab:blue", ms=5, label="front")
        ax.scatter(
            candidates[:, 1], candidates[:, 0], s=24, marker="x", c="tab:orange", label=_label("candidates", candidates)
        )
        ax.scatter(chosen[:, 1], chosen[:, 0], s=70, marker="*", c="tab:red", label=_label("chosen", chosen), zorder=3)
        chosen_xy = chosen[:, ::-1]
        ax.set_xlabel(objectives_labels[1])
    else:
        index = np.arange(len(archive))
        ax.scatter(index, archive[:, 0], s=12, c="0.6", label="archive")
        if len(archive):
            ax.step(index, np.minimum.accumulate(archive[:, 0]), where="post", c="tab:green", label="best so far")
        if len(front):
            ax.axhline(front[:, 0].min(), c="tab:blue", ls="--", lw=1, label="front")
        next_x = np.full(len(candidates), len(archive))
        ax.scatter(next_x, candidates[:, 0], s=24, marker="x", c="tab:orange", label=_label("candidates", candidates))
        chosen_x = len(archive) + np.arange(len(chosen)) if chosen_at is None else np.asarray(chosen_at)
        chosen_xy = np.column_stack([chosen_x, chosen[:, 0]])
        ax.scatter(
            chosen_xy[:, 0], chosen_xy[:, 1], s=70, marker="*", c="tab:red", label=_label("chosen", chosen), zorder=3
        )
        ax.set_xlabel("evaluation")
    if chosen_labels is not None:
        for text, (x, y) in zip(chosen_labels, chosen_xy, strict=True):
            ax.annotate(str(text), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_ylabel(objectives_labels[0])
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="best", fontsize=8)
    return save_figure(figure, path)


HVSeries = tuple[Sequence[int] | None, Sequence[float]]


def plot_hypervolume(
    path: str | os.PathLike[str],
    hv: Sequence[float] | Mapping[str, HVSeries],
    n_evals: Sequence[int] | None = None,
    label: str = "msunas",
    title: str = "",
    bands: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
) -> Path:
    """Hypervolume against iteration (0 = the initial design), or against true evaluations when `n_evals` is given.

    `hv` may instead map labels to `(n_evals, hv)` pairs to overlay several algorithms on one axis (benchmarks);
    then either every pair gives its `n_evals` or none does, and `n_evals` must be None. `bands` maps some of
    those labels to `(low, high)` values per point, shaded around the line (the spread over seeds). The PNG is
    written atomically; returns its path.
    """
    if isinstance(hv, Mapping):
        if n_evals is not None:
            raise ValueError("give n_evals inside the (n_evals, hv) pairs when hv is a mapping")
        series = {str(name): (pair[0], pair[1]) for name, pair in hv.items()}
    else:
        series = {label: (n_evals, hv)}
    with_evals = {evals is not None for evals, _ in series.values()}
    if len(with_evals) > 1:
        raise ValueError("either every series gives its n_evals or none does")
    by_evals = with_evals == {True}

    figure = new_figure()
    ax = figure.add_subplot()
    for name, (evals, values) in series.items():
        y = np.asarray(values, dtype=float).reshape(-1)
        x = np.arange(len(y)) if evals is None else np.asarray(evals, dtype=float).reshape(-1)
        if len(x) != len(y):
            raise ValueError(f"{name}: {len(x)} n_evals for {len(y)} hypervolume values")
        (line,) = ax.plot(x, y, "o-", ms=3, drawstyle="steps-post", label=name)
        if bands and name in bands:
            low, high = (np.asarray(v, dtype=float).reshape(-1) for v in bands[name])
            if len(low) != len(x) or len(high) != len(x):
                raise ValueError(f"{name}: the band needs {len(x)} low and high values")
            ax.fill_between(x, low, high, step="post", alpha=0.2, color=line.get_color())
    ax.set_xlabel("true evaluations" if by_evals else "iteration")
    ax.set_ylabel("hypervolume")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if series:
        ax.legend(loc="best", fontsize=8)
    return save_figure(figure, path)
