"""Training losses of early-exit networks, one per upstream `--method`: `joint` (EDANAS) and `bernulli` (NACHOS).

A loss is a `LossFn` for `training.finetune.FineTuner`: it takes the network's `ExitOutputs` (logits per exit,
final exit last, and a sigmoid confidence per exit when the network has confidence heads, the final one being the
constant 1) and the labels, and returns a scalar. `ExitLoss.terms` gives each weighted term by name, for logging;
the loss is their sum. `create_ee_loss(cfg, exit_costs)` builds the loss of `cfg.method`.

`joint`: `sum_i w_i · CE(z_i, y)`, every exit's mean cross-entropy, `w_i` = 1 unless given.

`bernulli`, with `b_i` exit i's confidence, `p_i = b_i · prod_{k<i} (1 − b_k)` the probability that an input
leaves at exit i (the final exit L takes the rest, `p_L = prod_{k<L} (1 − b_k)`) and `c_i` exit i's cumulative MACs:
- `classification`, weighed by `w_alpha`: `CE(sum_{i<L} p_i · z_i, y) + CE(z_L, y)`, the cross-entropy of the
  exit-probability-weighted mixture of the early exits' logits, plus the final exit's own cross-entropy.
- `prior`, weight 1: the binary cross-entropy of each early exit's confidence (clamped to [1e-4, 1 − 1e-4]) to
  whether that exit classifies the input correctly (argmax of its logits == label, a constant), each sample
  weighted `N / (2 · n_correct)` or `N / (2 · n_wrong)` of its exit in the batch (class balancing), averaged over
  samples and early exits. The final exit's confidence is not trained.
- `energy`, weighed by `w_beta`: `max(0, avg_macs − mmax) / |c_L − mmax|` with `avg_macs = mean_n sum_i p_i · c_i`
  the expected MACs per input; 0 when the whole network fits (`c_L <= mmax`).
- `support`, weighed by `w_gamma`: `mean_{n,i} (S[y_n, i] − b_{n,i})^2`, every exit's confidence pulled towards
  the accuracy `S[class, exit]` that exit reached on the input's class in a balanced support set; 0 while no
  support matrix is set (the trainer sets `BernulliLoss.support` once the support set is on).

Deviations from upstream CNAS (`early_exit/trainer.py`, `binary_bernulli_trainer` with its default flags):
- The energy term goes through the confidences: upstream takes `avg_macs.item()` and builds a new tensor, so the
  term it adds has no gradient and `--w_beta` changes nothing in training. Here it is differentiable.
- The support term compares each exit's confidence with that exit's support accuracy. Upstream's `mse_loss`
  broadcasts a [exits] row against a [exits, 1] column and so averages over every (confidence, exit accuracy)
  pair, which mixes exits.
- The support term follows `support` being set (`--support_set`); upstream ignores `--support_set` and turns the
  term on from epoch `--ee_epochs` of every run.
- `joint` sums the exits' cross-entropies, every exit weighted (upstream's `--joint_type losses` fixes the final
  exit's weight at 1); upstream's default `--joint_type logits` takes the cross-entropy of the weighted sum of all
  exits' logits instead.
- Not carried over (all off by default upstream): the global gate (`--gg_on`), relaxed-Bernoulli sampling
  (`--sample`), confidence dropout, the `probability` and `entropy` priors, regularisation scaling, and
  `--joint_type losses` for `bernulli`; the prior's weight `--beta` stays at its default 1.
- The costs `c_i` are the caller's: `early_exit.costs` counts every head an input ran through, upstream only the
  head of the exit it leaves at.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from utils.registry import Registry

if TYPE_CHECKING:
    from early_exit.config import EETrainConfig
    from early_exit.model import ExitOutputs

CLAMP = 1e-4
"""Confidences are clamped to [CLAMP, 1 − CLAMP] in the prior's binary cross-entropy (as upstream)."""


def exit_probabilities(confidence: Tensor) -> Tensor:
    """[N, exits] probabilities of leaving at each exit from [N, exits] confidences; the final exit takes the rest.

    `p_i = b_i · prod_{k<i} (1 − b_k)`, `p_L = prod_{k<L} (1 − b_k)` (the final confidence is not read); rows sum
    to 1.
    """
    early = confidence[:, :-1]
    reach = torch.cat([torch.ones_like(confidence[:, :1]), torch.cumprod(1 - early, dim=1)], dim=1)
    return reach * torch.cat([early, torch.ones_like(confidence[:, :1])], dim=1)


def expected_macs(confidence: Tensor, exit_costs: Sequence[float]) -> Tensor:
    """The mean over the batch of the MACs an input is expected to spend, given [N, exits] confidences."""
    costs = torch.tensor(list(exit_costs), dtype=confidence.dtype, device=confidence.device)
    return (exit_probabilities(confidence) * costs).sum(dim=1).mean()  # no matmul: autocast would halve it


class ExitLoss(ABC):
    """A training loss of an early-exit network: the sum of named, weighted terms."""

    @abstractmethod
    def terms(self, out: ExitOutputs, y: Tensor) -> dict[str, Tensor]:
        """Each weighted term of the loss on a batch with labels `y`, a scalar tensor by name."""

    def __call__(self, out: ExitOutputs, y: Tensor) -> Tensor:
        """The loss on a batch: the sum of its terms."""
        return torch.stack(list(self.terms(out, y).values())).sum()


@dataclass(frozen=True)
class JointLoss(ExitLoss):
    """EDANAS's joint training: the weighted sum of every exit's cross-entropy (weights default to 1)."""

    weights: Sequence[float] | None = None

    def terms(self, out: ExitOutputs, y: Tensor) -> dict[str, Tensor]:
        """`exit_i`: `w_i · CE(z_i, y)` for each exit i."""
        weights = [1.0] * len(out.logits) if self.weights is None else list(self.weights)
        if len(weights) != len(out.logits):
            raise ValueError(f"{len(weights)} weights for a network with {len(out.logits)} exits")
        return {
            f"exit_{i}": w * F.cross_entropy(z.float(), y)
            for i, (w, z) in enumerate(zip(weights, out.logits, strict=True))
        }


@dataclass
class BernulliLoss(ExitLoss):
    """NACHOS's training of exits with confidence heads: classification, prior, energy and support terms.

    `exit_costs`: cumulative MACs of each exit (final last), in the unit of `mmax`. `support`: the [n_classes,
    exits] support-set accuracies, None while the support term is off.
    """

    exit_costs: Sequence[float]
    mmax: float
    w_alpha: float = 1.0
    w_beta: float = 0.0
    w_gamma: float = 0.0
    support: Tensor | None = None

    def terms(self, out: ExitOutputs, y: Tensor) -> dict[str, Tensor]:
        """`classification`, `prior`, `energy` and `support`, each times its weight (see the module docstring)."""
        if out.confidence is None:
            raise ValueError("the bernulli loss needs a network with confidence heads")
        logits = torch.stack(out.logits, dim=1).float()  # [N, exits, classes]
        confidence = torch.stack(out.confidence, dim=1).float()  # [N, exits]
        if len(self.exit_costs) != confidence.shape[1]:
            raise ValueError(f"{len(self.exit_costs)} exit costs for a network with {confidence.shape[1]} exits")
        return {
            "classification": self.w_alpha * self._classification(logits, confidence, y),
            "prior": self._prior(logits[:, :-1], confidence[:, :-1], y),
            "energy": self.w_beta * self._energy(confidence),
            "support": self.w_gamma * self._support(confidence, y),
        }

    @staticmethod
    def _classification(logits: Tensor, confidence: Tensor, y: Tensor) -> Tensor:
        mixture = (exit_probabilities(confidence)[:, :-1, None] * logits[:, :-1]).sum(dim=1)
        return F.cross_entropy(mixture, y) + F.cross_entropy(logits[:, -1], y)

    @staticmethod
    def _prior(logits: Tensor, confidence: Tensor, y: Tensor) -> Tensor:
        if confidence.shape[1] == 0:  # no early exit
            return confidence.new_zeros(())
        with torch.no_grad():
            correct = logits.argmax(dim=-1) == y[:, None]
            n = correct.shape[0]
            n_correct = correct.sum(dim=0)
            weight = torch.where(correct, n / (2 * n_correct), n / (2 * (n - n_correct))).to(confidence.dtype)
        b = confidence.clamp(CLAMP, 1 - CLAMP)
        target = correct.to(b.dtype)
        bce = -(target * b.log() + (1 - target) * (1 - b).log())
        return (weight * bce).mean()

    def _energy(self, confidence: Tensor) -> Tensor:
        last = self.exit_costs[-1]
        if last <= self.mmax:  # the whole network fits
            return confidence.new_zeros(())
        return F.relu(expected_macs(confidence, self.exit_costs) - self.mmax) / abs(last - self.mmax)

    def _support(self, confidence: Tensor, y: Tensor) -> Tensor:
        if self.support is None:
            return confidence.new_zeros(())
        if self.support.shape[1] != confidence.shape[1]:
            raise ValueError(f"a support matrix of {self.support.shape[1]} exits for {confidence.shape[1]} exits")
        return ((self.support.to(confidence)[y] - confidence) ** 2).mean()


EE_LOSSES: Registry[ExitLoss] = Registry("early-exit training method")


@EE_LOSSES.register("joint", confidence=False)
def _joint(cfg: EETrainConfig, exit_costs: Sequence[float], mmax: float) -> ExitLoss:
    """EDANAS: the sum of every exit's cross-entropy."""
    return JointLoss()


@EE_LOSSES.register("bernulli", confidence=True)
def _bernulli(cfg: EETrainConfig, exit_costs: Sequence[float], mmax: float) -> ExitLoss:
    """NACHOS: confidence-weighted cross-entropy, confidence prior, MACs constraint and support set."""
    return BernulliLoss(exit_costs, mmax, cfg.w_alpha, cfg.w_beta, cfg.w_gamma)


def create_ee_loss(cfg: EETrainConfig, exit_costs: Sequence[float], mmax: float | None = None) -> ExitLoss:
    """The loss of `cfg.method` for exits costing `exit_costs` (cumulative, final last) under budget `mmax`.

    Without a budget (`mmax` None) the energy term is 0.
    """
    budget = math.inf if mmax is None else mmax
    return EE_LOSSES.create(cfg.method, cfg=cfg, exit_costs=exit_costs, mmax=budget)


def list_methods() -> list[str]:
    """The registered training methods, sorted."""
    return EE_LOSSES.names()


def needs_confidence(method: str) -> bool:
    """Whether `method` trains confidence heads (its network must have them)."""
    return bool(EE_LOSSES.meta(method)["confidence"])
