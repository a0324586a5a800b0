"""From an extracted OFA subnet to a measured early-exit network: attach heads, train the exits, choose thresholds.

The `ee` evaluator and `early_exit/train.py` both run these steps, so a search measures what training reproduces:
- `attach_exits`: heads after the stages the architecture's exit genes name, with a confidence output when the
  training method needs one (`bernulli`); the exit policy follows from it (`cumulative` with confidences, else the
  softmax `margin`).
- `ExitTrainer`: the shared fine-tuning loop (`training.finetune.FineTuner`) with the method's loss. The first
  `warmup_ee_epochs` train the heads alone; the next `ee_epochs` also the backbone when `train_backbone` is on. Once
  the warm-up is over, `--support_set` refreshes the support matrix (each exit's accuracy per class on the first
  `SUPPORT_IMAGES` training images) before every epoch.
- `measure_exits`: every exit's outputs on one split, then the thresholds: the genome's own (EDANAS) unless
  `tune_epsilon` (or the space has none, NACHOS), then, over a `--mmax` budget, the repair action. Pass the
  **validation** split for anything that chooses; the test split is only ever measured with thresholds fixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from tqdm import tqdm

from data import DatasetSplits, batches
from early_exit.config import EETrainConfig
from early_exit.costs import ExitCosts, exit_costs
from early_exit.losses import BernulliLoss, create_ee_loss, needs_confidence
from early_exit.model import EarlyExitNet, ExitOutputs, build_early_exit_net, collect_outputs
from early_exit.policy import PolicyResult, evaluate_policy, repair_epsilon, tune_epsilon
from search_space.base import Arch
from training.finetune import FineTuneConfig, FineTuner

SUPPORT_IMAGES = 512
"""Training images the support matrix of `--support_set` is measured on."""


class ExitSpace(Protocol):
    """What an early-exit search space tells about an architecture's exits."""

    def exit_stages(self, arch: Arch) -> list[int]:
        """The stages (0..3) followed by an early exit."""

    def thresholds(self, arch: Arch) -> list[float] | None:
        """The genome's thresholds of those exits, or None when the space has none."""

    def resolution(self, arch: Arch) -> int:
        """The input resolution of `arch`."""


def policy_for(method: str) -> str:
    """The exit policy of networks trained by `method`: `cumulative` over confidences, else the softmax `margin`."""
    return "cumulative" if needs_confidence(method) else "margin"


def attach_exits(
    space: ExitSpace, subnet: nn.Module, arch: Arch, n_classes: int, method: str, seed: int = 0
) -> EarlyExitNet:
    """The early-exit network of `arch` on its extracted backbone `subnet` (shared, not copied)."""
    return build_early_exit_net(
        subnet,
        arch["d"],
        space.exit_stages(arch),
        n_classes,
        space.resolution(arch),
        confidence=needs_confidence(method),
        seed=seed,
    )


class ExitTrainer:
    """Trains an `EarlyExitNet` one epoch per `train_epoch` call (resumable through `state_dict`).

    A network with nothing to train (no early exit, the backbone frozen) passes its epochs without a step. A frozen
    backbone runs in eval mode (`EarlyExitNet.frozen_backbone`): its recalibrated batch-norm statistics stay.
    """

    def __init__(
        self,
        net: EarlyExitNet,
        splits: DatasetSplits,
        resolution: int,
        cfg: EETrainConfig,
        tune: FineTuneConfig,
        device: torch.device,
        mmax: float | None = None,
    ) -> None:
        self.net = net
        self.cfg = cfg
        self.splits = splits
        self.resolution = resolution
        self.device = device
        self.costs = exit_costs(net, resolution)
        self.loss = create_ee_loss(cfg, self.costs.exit_macs, mmax)
        params = list(net.parameters() if cfg.train_backbone else net.head_parameters())
        tune = replace(tune, epochs=cfg.epochs)
        self.tuner = FineTuner(net, splits, resolution, tune, device, loss=self.loss, params=params) if params else None
        self.idle_epochs = 0

    @property
    def epoch(self) -> int:
        """Epochs trained so far."""
        return self.idle_epochs if self.tuner is None else self.tuner.epoch

    @property
    def steps_per_epoch(self) -> int:
        """Optimiser steps per epoch (0: nothing to train)."""
        return 0 if self.tuner is None else self.tuner.steps_per_epoch

    def train_epoch(self, progress: tqdm | None = None) -> float:
        """One epoch (the backbone frozen during the warm-up), advancing `progress` per step; returns the mean loss.

        The loss is NaN when there is nothing to train.
        """
        if self.tuner is None:
            self.idle_epochs += 1
            return float("nan")
        warm = self.epoch < self.cfg.warmup_ee_epochs
        if self.cfg.support_set and not warm and isinstance(self.loss, BernulliLoss):
            self.loss.support = support_matrix(self.net, self.splits, self.resolution, self.device)
        backbone = list(self.net.backbone_parameters())
        trainable = [p.requires_grad for p in backbone]
        frozen = not (self.cfg.train_backbone and not warm)
        for p in backbone:
            p.requires_grad_(not frozen)
        self.net.frozen_backbone = frozen
        try:
            return self.tuner.train_epoch(progress)
        finally:
            self.net.frozen_backbone = False
            for p, flag in zip(backbone, trainable, strict=True):
                p.requires_grad_(flag)

    def state_dict(self) -> dict[str, Any]:
        """What continues the run exactly (the network's weights are saved separately)."""
        return {"idle_epochs": self.idle_epochs} if self.tuner is None else self.tuner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a `state_dict()`."""
        if self.tuner is None:
            self.idle_epochs = int(state["idle_epochs"])
        else:
            self.tuner.load_state_dict(state)


@torch.no_grad()
def support_matrix(net: EarlyExitNet, splits: DatasetSplits, resolution: int, device: torch.device) -> Tensor:
    """`[n_classes, n_exits]`: each exit's accuracy per class on the first `SUPPORT_IMAGES` training images.

    A class absent from those images takes each exit's overall accuracy.
    """
    outputs, labels = collect_outputs(
        net, batches(splits, "train", resolution, 256, train=False, device=device, limit=SUPPORT_IMAGES)
    )
    correct = torch.stack([logits.argmax(1) == labels for logits in outputs.logits], 1).float()
    overall = correct.mean(0)
    rows = [correct[labels == c].mean(0) if bool((labels == c).any()) else overall for c in range(splits.n_classes)]
    return torch.stack(rows).to(device)


@dataclass(frozen=True)
class ExitMeasurement:
    """An early-exit network measured on one split: its policy's result and the exits' exact costs."""

    result: PolicyResult
    costs: ExitCosts
    policy: str

    def stats(self) -> dict[str, Any]:
        """The `net.stats` numbers: `avg_macs`, exit ratios, thresholds, per-exit top-1 and MACs."""
        r, c = self.result, self.costs
        return {
            "avg_macs": r.avg_macs,
            "exits_ratio": r.exits_ratio,
            "epsilon": r.epsilon,
            "per_exit_top1": r.per_exit_top1,
            "exit_policy": self.policy,
            "backbone_macs": c.backbone_macs,
            "head_macs": c.head_macs,
            "exit_macs": c.exit_macs,
            "head_params": c.head_params,
        }


def split_outputs(
    net: EarlyExitNet, splits: DatasetSplits, split: str, resolution: int, device: torch.device, limit: int | None
) -> tuple[ExitOutputs, Tensor]:
    """Every exit's outputs and the labels on `split` (no augmentation)."""
    return collect_outputs(net, batches(splits, split, resolution, 256, train=False, device=device, limit=limit))


def measure_exits(
    costs: ExitCosts,
    outputs: ExitOutputs,
    labels: Tensor,
    method: str,
    epsilon: Sequence[float] | None,
    mmax: float | None = None,
    top1min: float | None = None,
) -> ExitMeasurement:
    """The policy's result on `outputs` of a network whose exits cost `costs`, with thresholds `epsilon`.

    The thresholds are tuned on these outputs when `epsilon` is None, then, over a `mmax` budget, repaired (never
    below `top1min`). Both choose: pass validation outputs, and measure a test split with the thresholds chosen
    there.
    """
    policy = policy_for(method)
    if epsilon is None:
        result = tune_epsilon(outputs, labels, policy, costs)
    else:
        result = evaluate_policy(outputs, labels, list(epsilon), policy, costs)
    if mmax is not None and result.avg_macs > mmax:
        result = repair_epsilon(outputs, labels, policy, costs, result.epsilon, mmax, top1min or 0.0)
    return ExitMeasurement(result, costs, policy)
