"""Fine-tuning one static network: the SGD loop shared by the supernet evaluator and `train.py`.

SGD with Nesterov momentum, a cosine learning rate stepped once per epoch, label smoothing and the dataset's
training augmentation; mixed precision (`torch.autocast` and a `GradScaler`) only on CUDA. With `--optim sam|asam`
(`robustness.sam.SAM` around that SGD) each step takes two forward and backward passes, always in full precision
(on CUDA with cuDNN's deterministic algorithms, as full-precision convolutions' gradients otherwise vary by run).
The run owns its random streams (the order and augmentation of the images, and dropout), seeded from
`FineTuneConfig.seed` and saved in `FineTuner.state_dict`, so a run resumed after any epoch continues exactly as if
it had never stopped, and the global torch random state is left as it was.

A trainer with another objective passes its own `loss` (a `LossFn` of the model's output and the labels, such as
the early-exit losses of `early_exit.losses`) and, to freeze part of the network, the `params` to optimise: the
others are never updated (their batch-norm statistics still follow the training batches, as in train mode).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from data import DatasetSplits, batches
from robustness.sam import SAM
from training.config import OptimConfig

LossFn = Callable[[Any, torch.Tensor], torch.Tensor]
"""A training loss: the model's output on a batch and its labels to a scalar tensor."""


@dataclass(frozen=True)
class FineTuneConfig:
    """The settings of a fine-tuning run (everything that decides its result)."""

    epochs: int
    optim: OptimConfig = field(default_factory=OptimConfig)
    seed: int = 0
    mixed_precision: bool = True  # only takes effect on CUDA
    num_workers: int = 0


@contextmanager
def _deterministic_cudnn(enabled: bool) -> Iterator[None]:
    """Use the deterministic algorithms of cuDNN within the block when `enabled`; the previous setting is restored."""
    before = torch.backends.cudnn.deterministic
    torch.backends.cudnn.deterministic = before or enabled
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic = before


class FineTuner:
    """Trains `model` on the training split of `splits` at `resolution`, one epoch per `train_epoch` call.

    `loss` defaults to the cross-entropy with the configured label smoothing; `params` (default: all of the
    model's) are the parameters the optimiser updates.
    """

    def __init__(
        self,
        model: nn.Module,
        splits: DatasetSplits,
        resolution: int,
        cfg: FineTuneConfig,
        device: torch.device,
        *,
        loss: LossFn | None = None,
        params: Iterable[nn.Parameter] | None = None,
    ) -> None:
        self.model = model
        self.splits = splits
        self.resolution = resolution
        self.cfg = cfg
        self.device = device
        self.loss = loss if loss is not None else self._cross_entropy
        self.optimizer = cfg.optim.optimizer(model.parameters() if params is None else params)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=max(cfg.epochs, 1))
        self.sam = isinstance(self.optimizer, SAM)
        self.amp = cfg.mixed_precision and device.type == "cuda" and not self.sam
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.generator = torch.Generator().manual_seed(cfg.seed)  # image order and augmentation
        with torch.random.fork_rng(devices=self._cuda_devices):
            torch.manual_seed(cfg.seed)
            self.rng_state = self._get_rng_state()  # dropout
        self.epoch = 0

    @property
    def _cuda_devices(self) -> list[torch.device]:
        return [self.device] if self.device.type == "cuda" else []

    @property
    def steps_per_epoch(self) -> int:
        """Optimiser steps per epoch (a final batch of one image is dropped)."""
        full, rest = divmod(len(self.splits.train), self.cfg.optim.batch_size)
        return full + (1 if rest > 1 else 0)

    def _cross_entropy(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The default loss: the cross-entropy with the configured label smoothing."""
        return F.cross_entropy(logits, y, label_smoothing=self.cfg.optim.label_smoothing)

    def train_epoch(self, progress: tqdm | None = None) -> float:
        """One epoch over the training split; returns the mean loss. The model is left in eval mode."""
        losses = []
        exact = self.sam and self.device.type == "cuda"  # SAM runs in full precision: see the module docstring
        with torch.random.fork_rng(devices=self._cuda_devices), _deterministic_cudnn(exact):
            self._set_rng_state(self.rng_state)
            self.model.train()
            for x, y in batches(
                self.splits,
                "train",
                self.resolution,
                self.cfg.optim.batch_size,
                train=True,
                generator=self.generator,
                device=self.device,
                num_workers=self.cfg.num_workers,
            ):
                losses.append(self._step(x, y))
                if progress is not None:
                    progress.update(1)
                    progress.set_postfix(epoch=self.epoch + 1, loss=f"{losses[-1]:.3f}")
            self.rng_state = self._get_rng_state()
        self.model.eval()
        self.scheduler.step()
        self.epoch += 1
        return float(np.mean(losses)) if losses else float("nan")

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One optimiser step on a batch; returns its loss (with SAM, the first pass's: at the weights themselves)."""
        self.optimizer.zero_grad(set_to_none=True)
        rng = self._get_rng_state() if self.sam else None
        with torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.amp):
            loss = self.loss(self.model(x), y)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"non-finite training loss {value} in epoch {self.epoch + 1}")
        if rng is not None:
            loss.backward()
            # first_step to the perturbed weights, zero_grad, the second pass, second_step back and SGD's step
            self.optimizer.step(lambda: self._perturbed_backward(x, y, rng))
            return value
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return value

    def _perturbed_backward(self, x: torch.Tensor, y: torch.Tensor, rng: dict[str, torch.Tensor]) -> torch.Tensor:
        """SAM's second pass, at the perturbed weights: the loss of the same batch, backpropagated.

        It draws the first pass's dropout (random state `rng`), and leaves the random state and the buffers (the
        batch-norm running statistics, which follow the weights themselves) as the first pass left them.
        """
        buffers = [(b, b.clone()) for b in self.model.buffers()]
        after = self._get_rng_state()
        self._set_rng_state(rng)
        loss = self.loss(self.model(x), y)
        loss.backward()
        self._set_rng_state(after)
        with torch.no_grad():
            for buffer, value in buffers:
                buffer.copy_(value)
        return loss

    def state_dict(self) -> dict[str, Any]:
        """Everything besides the model's weights needed to continue exactly: optimiser, schedule, scaler, RNGs."""
        return {
            "epoch": self.epoch,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "generator": self.generator.get_state(),
            "rng": self.rng_state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a `state_dict()` (the model's weights are loaded separately)."""
        self.epoch = int(state["epoch"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.generator.set_state(state["generator"])
        self.rng_state = dict(state["rng"])

    def _get_rng_state(self) -> dict[str, torch.Tensor]:
        state = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def _set_rng_state(self, state: dict[str, torch.Tensor]) -> None:
        torch.set_rng_state(state["cpu"])
        if self.device.type == "cuda" and "cuda" in state:
            torch.cuda.set_rng_state(state["cuda"], self.device)


def fine_tune(
    model: nn.Module,
    splits: DatasetSplits,
    resolution: int,
    cfg: FineTuneConfig,
    device: torch.device,
    *,
    loss: LossFn | None = None,
    params: Iterable[nn.Parameter] | None = None,
) -> list[float]:
    """Train `model` for all `cfg.epochs` epochs in one go (no checkpoints); returns the mean loss per epoch.

    `loss` and `params` as for `FineTuner`.
    """
    tuner = FineTuner(model, splits, resolution, cfg, device, loss=loss, params=params)
    return [tuner.train_epoch() for _ in range(cfg.epochs)]
