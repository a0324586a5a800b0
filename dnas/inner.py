"""Inner search: a differentiable engine refines one candidate network before it is measured (two-level NAS).

The outer loop (MSuNAS) chooses the macro architecture; an inner engine registered in `INNER_SEARCHES` (`pit`:
channel pruning by trainable masks, `fbnetv2`: Gumbel-softmax width and kernel choice) turns the candidate, with
its inherited weights, into a searchable network, trains weights and architecture parameters jointly for
`--inner_epochs` on the training split (`--inner_images` of it per epoch), and exports the refined plain network.
The loss is

    cross-entropy + inner_strength * cost / cost_of_the_unrefined_network

with the engine's regulariser (`pit`: MACs, `fbnetv2`: latency on the `--systolic_array`), so `--inner_strength`
means the same for every candidate and every cost: at 1, shedding all the cost is worth one nat of loss. Weights
follow the fine-tuning SGD (`OptimConfig`, without SAM), architecture parameters Adam at `--inner_lr`. The run
is seeded: the same candidate and seed give the same refined network.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from data import DatasetSplits, batches
from dnas.base import DNAS
from hw import HardwareModel
from hw.measure import model_cost
from training.config import OptimConfig
from utils.errors import UsageError
from utils.registry import Registry

NONE = "none"
"""`--inner_search none`: candidates are measured as they are (no refinement)."""

EngineFactory = Callable[[nn.Module, Sequence[int], str, HardwareModel | None], DNAS]
"""Builds an engine from a plain network, its input shape, a regulariser (`hw` cost name) and a hardware model."""

INNER_SEARCHES: Registry[DNAS] = Registry("inner search")


def register_inner_search(name: str, *, regularizer: str, help: str) -> Callable[[EngineFactory], EngineFactory]:
    """Register an engine factory as `--inner_search name`, penalising `regularizer` (an `hw` cost name)."""
    return INNER_SEARCHES.register(name, regularizer=regularizer, help=help)


@register_inner_search("pit", regularizer="macs", help="PIT: prune output channels by trainable masks (MACs)")
def _pit(model: nn.Module, input_shape: Sequence[int], regularizer: str, hardware: HardwareModel | None) -> DNAS:
    from dnas.pit import PIT

    return PIT(model, input_shape, regularizer=regularizer, hardware=hardware)


@register_inner_search(
    "fbnetv2", regularizer="latency", help="FBNetV2: Gumbel-softmax width and depthwise-kernel choice (latency)"
)
def _fbnetv2(model: nn.Module, input_shape: Sequence[int], regularizer: str, hardware: HardwareModel | None) -> DNAS:
    from dnas.fbnetv2 import FBNetV2Graph

    return FBNetV2Graph(model, input_shape, regularizer=regularizer, hardware=hardware)


def list_inner_searches() -> list[str]:
    """`none` and every registered engine."""
    return [NONE, *INNER_SEARCHES.names(aliases=False)]


@dataclass(frozen=True)
class InnerConfig:
    """How candidates are refined before they are measured (`--inner_search none` leaves them as they are)."""

    inner_search: str = NONE
    inner_epochs: int = 1
    inner_strength: float = 1.0
    inner_lr: float = 0.05
    inner_images: int | None = None

    @property
    def enabled(self) -> bool:
        """Whether candidates are refined."""
        return self.inner_search != NONE

    @property
    def regularizer(self) -> str:
        """The `hw` cost the engine penalises."""
        return INNER_SEARCHES.meta(self.inner_search)["regularizer"]

    def validate(self) -> InnerConfig:
        """`self` after checking each flag (one `UsageError` naming it)."""
        if self.inner_search not in list_inner_searches():
            raise UsageError(
                f"--inner_search must be one of {', '.join(list_inner_searches())}, got {self.inner_search!r}"
            )
        if self.enabled and self.inner_epochs < 1:
            raise UsageError(
                f"--inner_search {self.inner_search} trains its architecture parameters: --inner_epochs must be "
                f">= 1, got {self.inner_epochs}"
            )
        if self.inner_images is not None and self.inner_images < 2:
            raise UsageError(f"--inner_images must be >= 2 (none: the whole training split), got {self.inner_images}")
        if not self.inner_strength >= 0 or not self.inner_lr > 0:
            raise UsageError(
                f"need --inner_strength >= 0 and --inner_lr > 0, got {self.inner_strength} and " f"{self.inner_lr}"
            )
        return self

    def engine(self, model: nn.Module, input_shape: Sequence[int], hardware: HardwareModel | None = None) -> DNAS:
        """The searchable form of `model` (a `UsageError` when the engine cannot convert it)."""
        return INNER_SEARCHES.get(self.inner_search)(model, tuple(input_shape), self.regularizer, hardware)


INNER_HELP = {
    "inner_search": "refine every candidate with a differentiable engine before measuring it; none: measure it "
    "as it is. pit: PIT channel masks against MACs; fbnetv2: FBNetV2 width and kernel choice against systolic "
    "latency",
    "inner_epochs": "epochs of the inner search on the training split",
    "inner_strength": "weight of the inner regulariser (the cost relative to the unrefined candidate's)",
    "inner_lr": "Adam learning rate of the inner engine's architecture parameters",
    "inner_images": "training images per inner epoch, a fresh random subset each epoch (none: the whole split)",
}


@dataclass(frozen=True)
class Refinement:
    """The outcome of one inner search: the refined plain network and what the search did."""

    network: nn.Module
    record: dict[str, Any]


def refine(
    model: nn.Module,
    splits: DatasetSplits,
    resolution: int,
    cfg: InnerConfig,
    *,
    optim: OptimConfig,
    seed: int,
    device: torch.device,
    hardware: HardwareModel | None = None,
) -> Refinement:
    """Run `cfg`'s inner search on `model` (left unchanged) and export the refined network, in eval mode."""
    input_shape = (3, resolution, resolution)
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        engine = cfg.engine(model, input_shape, hardware).to(device)
        start = float(model_cost(cfg.regularizer, model, input_shape, engine.cost_kinds, engine.hardware))
        weights = optim.sgd(engine.net_parameters())
        arch = torch.optim.Adam(engine.arch_parameters(), lr=cfg.inner_lr)
        generator = torch.Generator().manual_seed(seed)
        losses = []
        for epoch in range(cfg.inner_epochs):
            engine.train()
            for x, y in batches(
                splits,
                "train",
                resolution,
                optim.batch_size,
                train=True,
                generator=generator,
                device=device,
                limit=cfg.inner_images,
            ):
                task = F.cross_entropy(engine(x), y, label_smoothing=optim.label_smoothing)
                loss = task + cfg.inner_strength * engine.cost() / max(start, 1e-12)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite inner-search loss {float(loss)} in epoch {epoch + 1}")
                weights.zero_grad(set_to_none=True)
                arch.zero_grad(set_to_none=True)
                loss.backward()
                weights.step()
                arch.step()
                losses.append(float(task.detach()))
            engine.epoch_end(epoch, cfg.inner_epochs)
        engine.eval()
        with torch.no_grad():
            end = float(engine.cost())
        network = engine.arch_export().eval()
    record = {
        "engine": cfg.inner_search,
        "regularizer": cfg.regularizer,
        "epochs": cfg.inner_epochs,
        "strength": cfg.inner_strength,
        "cost_before": start,
        "cost_after": end,
        "last_task_loss": losses[-1] if losses else None,
        "seconds": time.perf_counter() - started,
    }
    return Refinement(network, record)
