"""Training an OFA MobileNetV3 supernet from scratch with the sandwich rule and in-place distillation.

Each step trains the largest subnet on the labels, then the smallest and `n_random` random subnets on the labels
plus the largest's (detached) predictions; gradients accumulate and one SGD step follows. The learning rate
follows a cosine schedule with a short warm-up. A checkpoint is written every epoch, so `--resume` continues an
interrupted run exactly as if it had never stopped.

    python -m supernets.train --dataset digits --resolution 32 --epochs 10
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from data import DATASETS, DatasetSplits, batches, create_dataset, list_datasets
from search_space.base import Arch
from search_space.ofa_mbv3 import OFAMobileNetV3Space
from supernets.checkpoint import load_supernet_weights, save_supernet_weights
from supernets.evaluate import score_subnet
from supernets.ofa_mbv3 import SupernetConfig, activate, build_supernet
from training.checkpoint import cpu_state_dict, read_checkpoint, state_dict_of
from training.config import OPTIM_HELP, OptimConfig
from utils.cli import ArgumentParser, add_dataclass_flags, dataclass_from_args, flat_record, run_cli
from utils.device import resolve_device
from utils.errors import UsageError
from utils.io import atomic_torch_save, write_json

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
RESOLUTION_STEP = 4


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a supernet training run (and so its result)."""

    dataset: str = "digits"
    data: str | None = None
    resolution: int = 32
    min_resolution: int | None = None
    epochs: int = 10
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.05))
    kd_ratio: float = 1.0
    n_random: int = 2
    warmup_epochs: float = 1.0
    vld_size: int | None = None
    seed: int = 0
    width_mult: float = 1.0
    dropout: float = 0.1
    limit_train: int | None = None
    n_bn_cal: int = 500
    n_card_random: int = 20
    init: str | None = None

    def validate(self) -> TrainConfig:
        """`self`, after checking every value a user may get wrong (a `UsageError` otherwise)."""
        if self.dataset not in list_datasets():
            raise UsageError(f"unknown dataset {self.dataset!r}; choose one of: {', '.join(list_datasets())}")
        checks = {
            "--epochs must be >= 1": self.epochs >= 1,
            **self.optim.checks(),
            "supernet training supports --optim sgd only": not self.optim.sharpness.is_sam,
            "--resolution must be >= 8": self.resolution >= 8,
            "--min_resolution must lie in [8, --resolution]": self.min_resolution is None
            or 8 <= self.min_resolution <= self.resolution,
            "--kd_ratio must be >= 0": self.kd_ratio >= 0,
            "--n_random must be >= 0": self.n_random >= 0,
            "--width_mult must be > 0": self.width_mult > 0,
            "--n_bn_cal must be >= 1": self.n_bn_cal >= 1,
        }
        failed = [message for message, ok in checks.items() if not ok]
        if failed:
            raise UsageError(failed[0])
        return self

    @property
    def resolutions(self) -> tuple[int, ...]:
        """The input resolutions trained on (one is drawn per step)."""
        return tuple(range(self.min_resolution or self.resolution, self.resolution + 1, RESOLUTION_STEP))

    def supernet_config(self, n_classes: int) -> SupernetConfig:
        """The architecture of the supernet this run trains."""
        return SupernetConfig(n_classes=n_classes, width_mult=self.width_mult, dropout=self.dropout)

    def weights_name(self) -> str:
        """File stem of the weights, e.g. `ofa_mbv3_d234_e346_k357_w1.0-digits-r32`."""
        res = "-".join(str(r) for r in sorted({self.resolutions[0], self.resolution}))
        return f"{SupernetConfig(width_mult=self.width_mult).name}-{self.dataset}-r{res}"


def sandwich_step(
    net: nn.Module,
    archs: Sequence[Arch],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    label_smoothing: float,
    kd_ratio: float,
) -> float:
    """Accumulate gradients of the sandwich rule on one batch; `archs[0]` is the largest (the teacher).

    Returns the largest subnet's loss.
    """
    teacher_loss = 0.0
    soft: torch.Tensor | None = None
    for i, arch in enumerate(archs):
        activate(net, arch)
        logits = net(x)
        loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
        if i == 0:
            soft = F.softmax(logits.detach(), dim=1)
            teacher_loss = float(loss.detach())
        elif kd_ratio > 0 and soft is not None:
            loss = loss + kd_ratio * F.kl_div(F.log_softmax(logits, dim=1), soft, reduction="batchmean")
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {float(loss)} while training the supernet")
        loss.backward()
    return teacher_loss


def _lr_lambda(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


class SupernetTrainer:
    """Owns one training run: the data, the supernet, the optimiser, its checkpoints and its result card."""

    def __init__(self, cfg: TrainConfig, out_dir: str | Path = DEFAULT_WEIGHTS_DIR, device: str = "auto") -> None:
        self.cfg = cfg.validate()
        self.out_dir = Path(out_dir)
        self.device = resolve_device(device)
        self.splits: DatasetSplits = create_dataset(cfg.dataset, data=cfg.data, vld_size=cfg.vld_size, seed=cfg.seed)
        self.supernet_cfg = cfg.supernet_config(self.splits.n_classes)
        self.space = OFAMobileNetV3Space(lr=cfg.resolutions[0], ur=cfg.resolution, rstep=RESOLUTION_STEP)
        torch.manual_seed(cfg.seed)
        self.net = build_supernet(self.supernet_cfg)
        if cfg.init:
            load_supernet_weights(self.net, cfg.init)
        self.net.to(self.device, memory_format=torch.channels_last)
        self.optimizer = cfg.optim.sgd(self.net.parameters())
        steps = self.steps_per_epoch * cfg.epochs
        warmup = min(steps // 2, int(cfg.warmup_epochs * self.steps_per_epoch))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _lr_lambda(steps, max(1, warmup)))
        self.epoch = 0

    @property
    def weights_path(self) -> Path:
        """Where the trained weights go (OFA's `{"state_dict": ...}` format)."""
        return self.out_dir / f"{self.cfg.weights_name()}.pth"

    @property
    def card_path(self) -> Path:
        """Where the JSON card describing the weights goes."""
        return self.weights_path.with_suffix(".json")

    @property
    def checkpoint_path(self) -> Path:
        """The per-epoch training checkpoint used by `--resume`."""
        return self.weights_path.with_suffix(".train.pth")

    @property
    def n_train(self) -> int:
        """Training images used per epoch."""
        n = len(self.splits.train)
        return n if self.cfg.limit_train is None else min(n, self.cfg.limit_train)

    @property
    def steps_per_epoch(self) -> int:
        """Optimiser steps per epoch (a final batch of one image is dropped)."""
        full, rest = divmod(self.n_train, self.cfg.optim.batch_size)
        return full + (1 if rest > 1 else 0)

    def resume(self) -> None:
        """Continue from the per-epoch checkpoint; its configuration must match this run's.

        A setting the checkpoint predates (absent from its record) counts as its default.
        """
        state = read_checkpoint(self.checkpoint_path)
        saved = state.get("train_config")
        if not isinstance(saved, dict) or {**flat_record(TrainConfig()), **saved} != flat_record(self.cfg):
            raise UsageError(f"{self.checkpoint_path} was written by a run with another configuration: {saved}")
        self.net.load_state_dict(state_dict_of(state, self.checkpoint_path))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch = int(state["epoch"])
        log.info("resuming %s after epoch %d of %d", self.weights_path.name, self.epoch, self.cfg.epochs)

    def train_epoch(self, progress: tqdm) -> float:
        """One epoch of sandwich-rule steps; returns the mean loss of the largest subnet."""
        cfg = self.cfg
        seed = _epoch_seed(cfg.seed, self.epoch)
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        rng = np.random.default_rng(seed)
        self.net.train()
        losses = []
        data = batches(
            self.splits,
            "train",
            cfg.resolution,
            cfg.optim.batch_size,
            train=True,
            generator=generator,
            limit=self.n_train,
        )
        for x, y in data:
            resolution = int(rng.choice(cfg.resolutions))
            if resolution != x.shape[-1]:
                x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
            archs = [self.space.largest(), self.space.smallest(), *self.space.sample(cfg.n_random, rng)]
            self.optimizer.zero_grad(set_to_none=True)
            losses.append(
                sandwich_step(
                    self.net,
                    archs,
                    x.to(self.device).contiguous(memory_format=torch.channels_last),
                    y.to(self.device),
                    label_smoothing=cfg.optim.label_smoothing,
                    kd_ratio=cfg.kd_ratio,
                )
            )
            self.optimizer.step()
            self.scheduler.step()
            progress.update(1)
            progress.set_postfix(epoch=self.epoch + 1, loss=f"{losses[-1]:.3f}")
        self.epoch += 1
        return float(np.mean(losses))

    def save_checkpoint(self) -> None:
        """Write the per-epoch checkpoint, atomically."""
        atomic_torch_save(
            self.checkpoint_path,
            {
                "state_dict": cpu_state_dict(self.net),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "epoch": self.epoch,
                "train_config": flat_record(self.cfg),
            },
        )

    def card(self, train_time_s: float) -> dict[str, object]:
        """Validation accuracy of the smallest, the largest and random subnets after batch-norm recalibration."""
        rng = np.random.default_rng(self.cfg.seed)
        named = {"smallest": self.space.smallest(), "largest": self.space.largest()}
        randoms = self.space.sample(self.cfg.n_card_random, rng)
        score = {
            name: score_subnet(
                self.net, arch, self.splits, n_bn_cal=self.cfg.n_bn_cal, device=self.device, seed=self.cfg.seed
            )[1].top1
            for name, arch in [*named.items(), *((f"random_{i}", a) for i, a in enumerate(randoms))]
        }
        random_scores = [score[f"random_{i}"] for i in range(len(randoms))]
        return {
            "name": self.cfg.weights_name(),
            "weights": self.weights_path.name,
            "supernet": self.supernet_cfg.to_dict(),
            "dataset": self.cfg.dataset,
            "resolution": self.cfg.resolution,
            "resolutions": list(self.cfg.resolutions),
            "epochs": self.cfg.epochs,
            "seed": self.cfg.seed,
            "train_images": self.n_train,
            "valid_images": len(self.splits.valid),
            "train_time_s": round(train_time_s, 1),
            "accuracy": {
                "split": "valid",
                "smallest": score["smallest"],
                "largest": score["largest"],
                "random": {
                    "n": len(random_scores),
                    "min": min(random_scores, default=None),
                    "median": float(np.median(random_scores)) if random_scores else None,
                    "max": max(random_scores, default=None),
                },
            },
            "train_config": flat_record(self.cfg),
        }

    def run(self, resume: bool = False) -> Path:
        """Train (or continue) to the last epoch, then write the weights and the card; returns the weights path."""
        if resume and self.checkpoint_path.exists():
            self.resume()
        start = time.perf_counter()
        total = self.steps_per_epoch * self.cfg.epochs
        with tqdm(total=total, initial=self.steps_per_epoch * self.epoch, desc="supernet", unit="step") as bar:
            while self.epoch < self.cfg.epochs:
                loss = self.train_epoch(bar)
                self.save_checkpoint()
                log.info("epoch %d/%d: largest-subnet loss %.4f", self.epoch, self.cfg.epochs, loss)
        elapsed = time.perf_counter() - start
        save_supernet_weights(self.net, self.weights_path)
        write_json(self.card_path, self.card(elapsed))
        log.info("wrote %s and %s", self.weights_path, self.card_path)
        return self.weights_path


def ensure_supernet(cfg: TrainConfig, out_dir: str | Path = DEFAULT_WEIGHTS_DIR, device: str = "auto") -> Path:
    """The path of the cached weights for `cfg`, training them first (resuming a checkpoint) if absent."""
    trainer_path = Path(out_dir) / f"{cfg.weights_name()}.pth"
    if trainer_path.is_file() and trainer_path.with_suffix(".json").is_file():
        return trainer_path
    log.info("no cached supernet at %s: training one (this happens once)", trainer_path)
    return SupernetTrainer(cfg, out_dir, device).run(resume=True)


HELP = {
    "dataset": f"dataset. {DATASETS.describe()}",
    "data": "dataset folder",
    "resolution": "input resolution (the largest, with --min_resolution)",
    "min_resolution": "smallest input resolution (elastic resolution in steps of 4); none: --resolution only",
    "epochs": "training epochs",
    **OPTIM_HELP,
    "kd_ratio": "weight of the in-place distillation loss from the largest subnet",
    "n_random": "random subnets per sandwich step, besides the largest and the smallest",
    "warmup_epochs": "epochs of linear learning-rate warm-up",
    "vld_size": "validation images carved from train (recorded in the card: searches validate on them)",
    "seed": "fixes every random source, the validation split included",
    "width_mult": "width multiplier of the supernet",
    "dropout": "dropout before the classifier",
    "limit_train": "train on the first N training images only",
    "n_bn_cal": "training images for batch-norm recalibration when scoring subnets for the card",
    "n_card_random": "random subnets scored in the card",
    "init": "weights to start from (an OFA release or our .pth)",
}


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags, one per `TrainConfig` field (those of its `optim` included), where to write, which device."""
    parser = ArgumentParser(prog="python -m supernets.train", description=__doc__.split("\n\n")[0])
    add_dataclass_flags(parser, TrainConfig, HELP)
    parser.add_argument("--out", default=str(DEFAULT_WEIGHTS_DIR), help="folder for weights, card and checkpoint")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--resume", action="store_true", help="continue from the per-epoch checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="replace weights that already exist")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m supernets.train`."""
    args = build_parser().parse_args(argv)
    cfg = dataclass_from_args(TrainConfig, args)
    trainer = SupernetTrainer(cfg, args.out, args.device)
    if trainer.weights_path.exists() and not (args.overwrite or args.resume):
        raise UsageError(f"{trainer.weights_path} already exists; pass --overwrite to replace it")
    trainer.run(resume=args.resume)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
