"""Exit policies (which exit each sample leaves at), their evaluation, threshold tuning and threshold repair.

A policy scores every exit of every sample (`ExitPolicy.scores`, `[n_exits, N]`); a sample leaves at the first
early exit i whose score is at least epsilon_i, and the final exit takes whoever is left. Thresholds are one
float per early exit (`n_exits - 1`), or a single float for all of them. `create_policy(name)` is the one way to
build a policy; `list_policies()` names them all.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from early_exit.costs import ExitCosts, average_macs
from early_exit.model import ExitOutputs
from utils.registry import Registry

Epsilon = float | Sequence[float]

DEFAULT_GRID = (0.1, 0.2, 0.3, 0.5, 0.6, 0.7, 0.8)
"""Upstream NACHOS's threshold grid (`early_exit/train.py` of CNAS)."""

FIRST_EXIT_MIN = 0.7
"""Upstream's floor on the first exit's threshold while tuning: it gets `max(epsilon, 0.7)`."""


class ExitPolicy(ABC):
    """Decides at which exit each sample leaves, from every exit's outputs and one threshold per early exit."""

    name: ClassVar[str]
    needs_confidence: ClassVar[bool] = False  # whether it reads the heads' confidences (build with confidence)

    @abstractmethod
    def scores(self, outputs: ExitOutputs) -> Tensor:
        """Each exit's score for each sample, `[n_exits, N]`; exit i's depends only on the outputs of exits 0..i."""

    def thresholds(self, epsilon: Epsilon, n_exits: int) -> tuple[float, ...]:
        """One finite threshold per early exit of a network of `n_exits` exits (a float applies to all)."""
        values = (float(epsilon),) * (n_exits - 1) if isinstance(epsilon, int | float) else tuple(map(float, epsilon))
        if len(values) != n_exits - 1 or not all(map(math.isfinite, values)):
            raise ValueError(f"need {n_exits - 1} finite thresholds (one per early exit), got {epsilon!r}")
        return values

    def exit_index(self, outputs: ExitOutputs, epsilon: Epsilon) -> Tensor:
        """The exit each sample leaves at, `[N]` (long), over a whole pass at once."""
        return _first_passing(self.scores(outputs), self.thresholds(epsilon, outputs.n_exits))


POLICIES: Registry[ExitPolicy] = Registry("exit policy")


def register_policy(name: str, **meta: object) -> Callable[[type[ExitPolicy]], type[ExitPolicy]]:
    """Class decorator recording an `ExitPolicy` under `name` (its `name` must agree), with metadata."""
    return POLICIES.register_class(name, **meta)


def create_policy(name: str) -> ExitPolicy:
    """The policy registered under `name`; an unknown name is a `UsageError` listing the choices."""
    return POLICIES.create(name)


def list_policies() -> list[str]:
    """Registered policy names, sorted."""
    return POLICIES.names()


@register_policy("margin", help="EDANAS: exit when the softmax top-1 minus top-2 probability reaches epsilon")
class MarginPolicy(ExitPolicy):
    """EDANAS: an exit's score is its softmax margin, the top-1 minus the top-2 class probability."""

    name = "margin"

    def scores(self, outputs: ExitOutputs) -> Tensor:
        """Each exit's softmax margin, `[n_exits, N]` in [0, 1]."""
        top = torch.stack(outputs.logits).softmax(-1).topk(2, dim=-1).values
        return top[..., 0] - top[..., 1]


@register_policy("cumulative", help="NACHOS: exit when the cumulative confidence of the heads reaches epsilon")
class CumulativePolicy(ExitPolicy):
    """NACHOS: with heads' confidences b_j, exit i's score is `D_i = sum_{j<=i} b_j * prod_{k<j} (1 - b_k)`."""

    name = "cumulative"
    needs_confidence = True

    def scores(self, outputs: ExitOutputs) -> Tensor:
        """Each exit's cumulative confidence `D_i`, `[n_exits, N]` in [0, 1]."""
        if outputs.confidence is None:
            raise ValueError("the cumulative policy needs the heads' confidences: build the net with confidence=True")
        b = torch.stack(outputs.confidence)
        still_in = torch.cat([torch.ones_like(b[:1]), torch.cumprod(1 - b, 0)[:-1]])
        return torch.cumsum(b * still_in, 0)


def _first_passing(scores: Tensor, thresholds: Sequence[float]) -> Tensor:
    """Per sample, the first early exit whose score reaches its threshold, else the final exit."""
    eps = torch.tensor(thresholds, dtype=scores.dtype, device=scores.device).reshape(-1, 1)
    passed = torch.cat([scores[:-1] >= eps, torch.ones_like(scores[:1], dtype=torch.bool)])
    return passed.int().argmax(0)


@dataclass(frozen=True)
class PolicyResult:
    """What a policy with thresholds `epsilon` gives on a labelled pass.

    `top1`: percent of samples whose prediction, at the exit they left at, is right. `avg_macs`: millions per
    sample (`costs.average_macs`). `exits_ratio[i]`: the fraction of samples leaving at exit i.
    `per_exit_top1[i]`: exit i's own accuracy on every sample (percent).
    """

    top1: float
    avg_macs: float
    exits_ratio: list[float]
    per_exit_top1: list[float]
    epsilon: list[float]


class _Scored:
    """A pass scored once by a policy, evaluated under any thresholds."""

    def __init__(self, outputs: ExitOutputs, labels: Tensor, policy: ExitPolicy | str, costs: ExitCosts) -> None:
        self.policy = create_policy(policy) if isinstance(policy, str) else policy
        if costs.n_exits != outputs.n_exits:
            raise ValueError(f"costs of {costs.n_exits} exits for outputs of {outputs.n_exits}")
        if outputs.n_samples == 0 or tuple(labels.shape) != (outputs.n_samples,):
            raise ValueError(f"need labels [N] for N > 0 samples, got {tuple(labels.shape)} for {outputs.n_samples}")
        self.n_exits = outputs.n_exits
        self.scores = self.policy.scores(outputs)
        labels = labels.to(self.scores.device)
        self.correct = torch.stack([logits.argmax(1) == labels for logits in outputs.logits])
        self.costs = costs

    def result(self, epsilon: Epsilon) -> PolicyResult:
        thresholds = self.policy.thresholds(epsilon, self.n_exits)
        index = _first_passing(self.scores, thresholds)
        right = self.correct.gather(0, index[None])[0]
        ratio = (torch.bincount(index, minlength=self.n_exits).double() / index.numel()).tolist()
        return PolicyResult(
            top1=100.0 * right.double().mean().item(),
            avg_macs=average_macs(ratio, self.costs),
            exits_ratio=ratio,
            per_exit_top1=(100.0 * self.correct.double().mean(1)).tolist(),
            epsilon=list(thresholds),
        )


def evaluate_policy(
    outputs: ExitOutputs, labels: Tensor, epsilon: Epsilon, policy: ExitPolicy | str, costs: ExitCosts
) -> PolicyResult:
    """Top-1, average MACs and exit ratios of `policy` (or its name) with thresholds `epsilon` on a pass."""
    return _Scored(outputs, labels, policy, costs).result(epsilon)


def tune_epsilon(
    outputs: ExitOutputs,
    labels: Tensor,
    policy: ExitPolicy | str,
    costs: ExitCosts,
    grid: Sequence[float] = DEFAULT_GRID,
    first_min: float = FIRST_EXIT_MIN,
) -> PolicyResult:
    """The best thresholds of a grid search, as upstream NACHOS: pass outputs of the **validation** split.

    Tuning on the test split would make the reported accuracy optimistic; the function only sees tensors, so
    choosing the split is the caller's duty. Each grid value e gives the thresholds `(max(e, first_min), e, ...,
    e)`: e at every early exit but the first, which is floored at `first_min` (upstream's 0.7; 0 for uniform
    thresholds). The thresholds with the highest top-1 win; ties go to the lowest `avg_macs`, then to the earliest
    grid value.
    """
    if not grid:
        raise ValueError("the threshold grid is empty")
    scored = _Scored(outputs, labels, policy, costs)
    n_early = outputs.n_exits - 1
    results = [scored.result([max(e, first_min), *[e] * (n_early - 1)][:n_early]) for e in grid]
    return min(results, key=lambda r: (-r.top1, r.avg_macs))


def repair_epsilon(
    outputs: ExitOutputs,
    labels: Tensor,
    policy: ExitPolicy | str,
    costs: ExitCosts,
    epsilon: Epsilon,
    mmax: float,
    top1min: float,
    step: float = 0.1,
) -> PolicyResult:
    """Thresholds lowered until `avg_macs <= mmax` where top-1 allows, as upstream NACHOS's repair action.

    From the last early exit backwards, that exit's threshold is lowered by `step` (not below 0) while
    `avg_macs > mmax` and top-1 >= `top1min`: a step that would bring top-1 under `top1min` is not taken, and the
    repair moves on to the previous exit, as it does when the threshold reaches 0. The result may still exceed
    `mmax` (nothing is lowered when top-1 starts under `top1min`); callers check it. Pass validation outputs.
    """
    if step <= 0:
        raise ValueError(f"the repair step must be positive, got {step}")
    scored = _Scored(outputs, labels, policy, costs)
    thresholds = list(scored.policy.thresholds(epsilon, outputs.n_exits))
    result = scored.result(thresholds)
    for i in reversed(range(len(thresholds))):
        while result.avg_macs > mmax and result.top1 >= top1min and thresholds[i] > 0:
            trial = [*thresholds[:i], round(max(thresholds[i] - step, 0.0), 12), *thresholds[i + 1 :]]
            candidate = scored.result(trial)
            if candidate.top1 < top1min:
                break
            thresholds, result = trial, candidate
    return result
