"""The figure of a one-shot search (`<strategy>/search.png`): what was scored, and how the search progressed.

Left: every scored path's cost against its supernet-inherited validation top-1, the target as a vertical line and
the found path starred. Right: the progress of the strategy: the architecture loss and expected cost per step of a
differentiable search (its `trace`), else the best top-1 so far against the number of paths scored (with the
generations of an evolution marked).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.axes import Axes

from oneshot.hc_loss import to_millions
from oneshot.strategies import SearchOutcome
from search.plots import new_figure, save_figure


def plot_search(outcome: SearchOutcome, path: Path, title: str) -> Path:
    """Draw `outcome` into a PNG at `path` (atomically)."""
    figure = new_figure(figsize=(11.0, 4.5))
    scatter, progress = figure.subplots(1, 2)
    metric = outcome.hc_metric
    costs = np.array([to_millions(s.cost) for s in outcome.history])
    top1 = np.array([s.top1 for s in outcome.history])
    scatter.scatter(costs, top1, s=14, alpha=0.6, label=f"scored paths ({len(costs)})")
    scatter.scatter([to_millions(outcome.best_cost)], [outcome.best_top1], marker="*", s=220, c="C3", label="found")
    if outcome.target is not None:
        scatter.axvline(to_millions(outcome.target), color="k", linestyle="--", linewidth=1, label="target")
    scatter.set_xlabel(f"{metric} (M)")
    scatter.set_ylabel("supernet validation top-1 (%)")
    scatter.set_title(f"{title}: {outcome.strategy}")
    scatter.legend(loc="lower right", fontsize=8)
    if outcome.trace and "expected_cost" in outcome.trace[0]:
        _plot_trace(progress, outcome, metric)
    else:
        _plot_best_so_far(progress, outcome, top1)
    return save_figure(figure, path)


def _plot_trace(axes: Axes, outcome: SearchOutcome, metric: str) -> None:
    """Architecture loss and expected cost per step of a differentiable search."""
    steps = [t["step"] for t in outcome.trace]
    axes.plot(steps, [t["loss"] for t in outcome.trace], color="C0", label="architecture loss")
    axes.set_xlabel("architecture step")
    axes.set_ylabel("loss")
    cost_axes = axes.twinx()
    cost_axes.plot(steps, [to_millions(t["expected_cost"]) for t in outcome.trace], color="C1", label="E[cost]")
    if outcome.target is not None:
        cost_axes.axhline(to_millions(outcome.target), color="k", linestyle="--", linewidth=1)
    cost_axes.set_ylabel(f"expected {metric} (M)")
    axes.set_title("differentiable search")
    axes.legend(loc="upper right", fontsize=8)


def _plot_best_so_far(axes: Axes, outcome: SearchOutcome, top1: np.ndarray) -> None:
    """The best top-1 so far against the paths scored; the first path of each evolution generation marked."""
    scored = np.arange(1, len(top1) + 1)
    axes.plot(scored, np.maximum.accumulate(top1), color="C2", label="best so far")
    generations = [s.generation for s in outcome.history]
    starts = [i for i, g in enumerate(generations) if g is not None and (i == 0 or generations[i - 1] != g)]
    for i in starts[1:]:
        axes.axvline(i + 1, color="0.85", linewidth=0.8)
    axes.set_xlabel("paths scored" + (" (grey: new generation)" if len(starts) > 1 else ""))
    axes.set_ylabel("best validation top-1 (%)")
    axes.set_title(outcome.strategy)
    axes.legend(loc="lower right", fontsize=8)
