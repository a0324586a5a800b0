"""The FBNetV2 search loop: alternate weight and architecture epochs, extract the winner, train it to the end.

Each search epoch trains the weights with SGD on `1 − arch_split` of the training split (task loss), then the
choice logits with Adam on the other `arch_split` (`task loss + strength · expected cost / reference`, the cost
model being `regularizer`, latency by default); the Gumbel temperature decays exponentially per epoch. The arg-max
network is exported as a plain smaller network and trained with the same trainer on the whole training split,
keeping the epoch with the best validation top-1; the test split is evaluated once, at the end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from data import DatasetSplits, batches
from dnas.fbnetv2.arch import ArchDef
from dnas.fbnetv2.model import FBNetV2
from hw import COST_MODELS, HardwareModel
from utils.errors import UsageError
from utils.seed import seed_everything

logger = logging.getLogger(__name__)

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class SearchConfig:
    """Everything one search and the winner's training depend on."""

    strength: float = 1.0  # lambda: weight of the normalised expected cost
    regularizer: str = "latency"  # the hw cost model searched against
    epochs: int = 10  # search epochs
    final_epochs: int = 10  # training epochs of the extracted winner
    batch_size: int = 64
    lr: float = 0.05  # SGD, weights
    momentum: float = 0.9
    weight_decay: float = 1e-4
    arch_lr: float = 0.01  # Adam, choice logits
    arch_split: float = 0.2  # share of the training split that trains the architecture
    temperature: float = 5.0  # initial Gumbel-softmax temperature
    temperature_decay: float = 0.8  # per-epoch factor
    resolution: int = 8
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not 0 < self.arch_split < 1:
            raise UsageError(f"arch_split must lie in (0, 1), got {self.arch_split}")
        if self.epochs < 0 or self.final_epochs < 0 or self.strength < 0:
            raise UsageError("epochs, final_epochs and strength must be non-negative")
        COST_MODELS.entry(self.regularizer)


@dataclass
class SearchResult:
    """The trained winner and its numbers (top-1 in percent, latency at batch 1 in the hardware model's unit)."""

    model: nn.Module
    summary: dict[str, Any]
    latency: float
    reference_latency: float
    params: int
    macs: int
    valid_top1: float
    test_top1: float
    history: list[dict[str, float]] = field(default_factory=list)


def split_for_search(splits: DatasetSplits, arch_split: float, seed: int) -> tuple[DatasetSplits, DatasetSplits]:
    """`(weight splits, architecture splits)`: the training split shuffled with `seed` and cut at `arch_split`."""
    order = torch.randperm(len(splits.train), generator=torch.Generator().manual_seed(seed))
    cut = round(len(order) * arch_split)
    weights, arch = splits.train.subset(order[cut:]), splits.train.subset(order[:cut])
    return replace(splits, train=weights), replace(splits, train=arch)


def run_epoch(
    model: nn.Module,
    splits: DatasetSplits,
    cfg: SearchConfig,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    loss_fn: LossFn = F.cross_entropy,
) -> None:
    """One shuffled pass over `splits.train`, stepping `optimizer` on `loss_fn(output, labels)`."""
    model.train()
    for x, y in batches(splits, "train", cfg.resolution, cfg.batch_size, train=True, generator=generator):
        loss = loss_fn(model(x.to(cfg.device)), y.to(cfg.device))
        model.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


@torch.no_grad()
def top1(model: nn.Module, splits: DatasetSplits, split: str, cfg: SearchConfig) -> float:
    """Top-1 (percent) of `model` in evaluation mode on `split`."""
    model.eval()
    correct = total = 0
    for x, y in batches(splits, split, cfg.resolution, 256, train=False):
        correct += int((model(x.to(cfg.device)).argmax(1).cpu() == y).sum())
        total += len(y)
    return 100.0 * correct / total


def weight_optimizer(params: list[nn.Parameter], cfg: SearchConfig) -> torch.optim.Optimizer:
    """SGD with momentum and weight decay, shared by the search and the winner's training."""
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def train_winner(
    model: nn.Module, splits: DatasetSplits, cfg: SearchConfig, generator: torch.Generator
) -> tuple[nn.Module, float]:
    """Train `model` for `final_epochs` on the training split; keep the weights of its best validation epoch."""
    optimizer = weight_optimizer(list(model.parameters()), cfg)
    best, best_state = top1(model, splits, "valid", cfg), {k: v.clone() for k, v in model.state_dict().items()}
    for _ in range(cfg.final_epochs):
        run_epoch(model, splits, cfg, optimizer, generator)
        score = top1(model, splits, "valid", cfg)
        if score > best:
            best, best_state = score, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return model, best


def search(
    arch_def: ArchDef,
    splits: DatasetSplits,
    hardware: str | HardwareModel | None = None,
    cfg: SearchConfig | None = None,
) -> SearchResult:
    """Search `arch_def` against `cfg.regularizer` (on `hardware`), then train and evaluate the extracted winner."""
    cfg = cfg or SearchConfig()
    if tuple(arch_def.input_shape[1:]) != (cfg.resolution, cfg.resolution):
        raise UsageError(f"the arch_def expects inputs {arch_def.input_shape}, the config feeds {cfg.resolution} px")
    seed_everything(cfg.seed)
    model = FBNetV2(arch_def, hardware, cfg.temperature, cfg.regularizer).to(cfg.device)
    weight_data, arch_data = split_for_search(splits, cfg.arch_split, cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    weights = weight_optimizer(model.net_parameters(), cfg)
    arch_params = model.arch_parameters()
    arch = torch.optim.Adam(arch_params, lr=cfg.arch_lr) if arch_params else None

    def arch_loss(output: Tensor, labels: Tensor) -> Tensor:
        return F.cross_entropy(output, labels) + cfg.strength * model.get_regularization_loss()

    history = []
    for epoch in range(cfg.epochs):
        model.temperature = cfg.temperature * cfg.temperature_decay**epoch
        run_epoch(model, weight_data, cfg, weights, generator)
        if arch is not None:
            run_epoch(model, arch_data, cfg, arch, generator, arch_loss)
        history.append(
            {
                "epoch": epoch,
                "temperature": model.temperature,
                "expected_cost_ratio": float(model.get_regularization_loss().detach()),
                "latency": model.get_latency(),
                "valid_top1": top1(model, splits, "valid", cfg),
            }
        )
        logger.info("search epoch %d: %s", epoch, history[-1])
    summary = model.arch_summary()
    winner, valid = train_winner(model.arch_export(), splits, cfg, generator)
    return SearchResult(
        model=winner,
        summary=summary,
        latency=summary["latency"],
        reference_latency=model.reference_latency,
        params=summary["params"],
        macs=summary["macs"],
        valid_top1=valid,
        test_top1=top1(winner, splits, "test", cfg),
        history=history,
    )
