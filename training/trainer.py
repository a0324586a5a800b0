"""The trainer behind `train.py`: fine-tune one chosen single-exit network, select it on validation, test it once.

`NetTrainer(cfg)` reads and checks every input at construction (the subnet, its starting weights, a checkpoint to
resume) and writes nothing before `run`. Files are named after the subnet file (`Paths`): `ckpt.pth`, `net.stats`,
the per-epoch checkpoint `net.train.pth` and exports, all written atomically.

A trainer of another kind of network (`early_exit.trainer.EENetTrainer`) subclasses it and overrides its hooks:
which subnets it takes (`_read_subnet`) and weights (`_check_arch`), the network it builds (`_build_model`) and
trains (`_tuner`), what it validates each epoch (`_validate`), measures at the end (`_selected`) and exports
(`exportable`).

The validation split is the one the starting weights record (`split` in `net.inherited`: the images their supernet
never trained on, whatever `--seed` says); weights without one, or training from scratch, carve it with `--seed`.
`ckpt.pth`, `net.train.pth` and `net.stats` record the split used, so a run from them keeps it.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm import tqdm

from data import DatasetSplits, SplitSpec, create_dataset, validation_split
from deploy import export_model
from robustness.measure import RobustnessMeasurement
from search_space import Arch, SearchSpace, create_search_space, read_subnet
from training.bn import recalibrate_bn
from training.checkpoint import cpu_state_dict, read_checkpoint, recorded_split, state_dict_of, subnet_checkpoint
from training.config import NetTrainConfig
from training.evaluate import accuracy, calibration_images
from training.finetune import FineTuneConfig, FineTuner
from utils.device import resolve_device
from utils.errors import UsageError
from utils.io import atomic_torch_save, write_json
from utils.seed import seed_everything

log = logging.getLogger("train")

CKPT_NAME = "ckpt.pth"
EARLY_EXIT_KEYS = ("b", "t")


def read_single_exit_subnet(path: Path, space: SearchSpace) -> Arch:
    """The canonical single-exit architecture of `space` in a `net.subnet` file; anything else is a `UsageError`."""
    arch = read_subnet(path)
    if any(key in arch for key in EARLY_EXIT_KEYS):
        raise UsageError(
            f"{path} describes an early-exit network (keys 'b'/'t'); train.py fine-tunes single-exit networks: "
            "fine-tune early-exit ones with python -m early_exit.train"
        )
    return validate_arch(arch, str(path), space)


def validate_arch(arch: Any, source: str, space: SearchSpace) -> Arch:
    """`arch` in canonical form (any resolution the supernet can run); invalid ones name `source`."""
    try:
        return space.validate(arch)
    except UsageError as err:
        raise type(err)(f"{source}: {err}") from None


def not_finite(detail: str) -> UsageError:
    """The error of a network whose outputs are NaN or infinite (`detail` says where)."""
    return UsageError(
        f"the network's outputs are not finite: {detail}; its weights are broken or training "
        "diverged (try a lower --lr)"
    )


class EpochTrainer(Protocol):
    """The training loop a `NetTrainer` drives, one epoch per call, resumable (`FineTuner`, or one wrapping it)."""

    @property
    def epoch(self) -> int:
        """Epochs trained so far."""

    @property
    def steps_per_epoch(self) -> int:
        """Optimiser steps per epoch."""

    def train_epoch(self, progress: tqdm | None = None) -> float:
        """One epoch; returns the mean loss."""

    def state_dict(self) -> dict[str, Any]:
        """What continues the run exactly (the weights are saved separately)."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a `state_dict()`."""


@dataclass
class Paths:
    """Where a run reads and writes, derived from the subnet file (`net.subnet` → `net.*` next to it)."""

    subnet: Path
    save: Path

    @property
    def stem(self) -> str:
        """The subnet file's name without its suffix (`net` for `net.subnet`)."""
        return self.subnet.stem

    @property
    def inherited(self) -> Path:
        """The default initial weights: the inherited ones written by post_search.py."""
        return self.subnet.with_suffix(".inherited")

    @property
    def search_ckpt(self) -> Path:
        """The fallback initial weights: the evaluator's (or an earlier run's) checkpoint."""
        return self.subnet.parent / CKPT_NAME

    @property
    def search_stats(self) -> Path:
        """The stats next to the subnet (the search's numbers, kept under `search`)."""
        return self.subnet.with_suffix(".stats")

    @property
    def ckpt(self) -> Path:
        """The selected weights, in the evaluator's checkpoint format plus `n_classes`, `width_mult`, `split`."""
        return self.save / CKPT_NAME

    @property
    def stats(self) -> Path:
        """The final numbers."""
        return self.save / f"{self.stem}.stats"

    @property
    def checkpoint(self) -> Path:
        """The per-epoch training checkpoint that `--resume` continues from."""
        return self.save / f"{self.stem}.train.pth"

    def export(self, fmt: str) -> Path:
        """The exported network in format `fmt` (`net.onnx`)."""
        return self.save / f"{self.stem}.{fmt}"


class NetTrainer:
    """One fine-tuning run: every input is read and checked at construction, and nothing is written before `run`."""

    program = "train.py"
    """The command line whose runs this trainer makes (named in messages)."""

    def __init__(self, cfg: NetTrainConfig) -> None:
        self.cfg = cfg.validate()
        subnet = Path(cfg.subnet)
        self.paths = Paths(subnet, Path(cfg.save) if cfg.save else subnet.parent)
        self.space, self.arch = self._read_subnet(subnet)
        self.resolution = self.space.resolution(self.arch)
        self.device = resolve_device(cfg.device)
        seed_everything(cfg.seed)
        resumed = self._read_resume_state() if cfg.resume else None
        init_path = None if resumed is not None else self._init_path()
        initial = read_checkpoint(init_path) if init_path else None
        start = (resumed, self.paths.checkpoint) if resumed is not None else (initial, init_path)
        split = self._validation_split(*start)
        self.splits: DatasetSplits = create_dataset(
            cfg.dataset, data=cfg.data, vld_size=split.vld_size, seed=split.seed
        )
        self.split = replace(split, vld_size=len(self.splits.valid))  # as recorded: the size, not None
        self.n_classes = self.splits.n_classes
        if cfg.n_classes is not None and cfg.n_classes != self.n_classes:
            raise UsageError(f"--n_classes {cfg.n_classes} but dataset {cfg.dataset} has {self.n_classes} classes")
        self.search_stats = self._read_search_stats()
        self.robustness = RobustnessMeasurement(
            cfg.robust, dataset=cfg.dataset, data=cfg.data, ood_data=cfg.ood_data, ood_reference=cfg.ood_reference
        )
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {}
        start_record = (resumed if resumed is not None else initial) or {}
        self.structure = {k: start_record[k] for k in self.space.structure_keys if k in start_record}
        if resumed is not None:
            self.init = str(resumed["init"])
            self.width_mult = float(resumed["width_mult"])
            weights = state_dict_of(resumed, self.paths.checkpoint)
        else:
            self.init = str(init_path) if init_path else "scratch"
            weights, self.width_mult = None, cfg.width_mult or 1.0
            if initial is not None and init_path is not None:
                weights, self.width_mult = self._check_weights(initial, init_path)
        self.model = self._build_model(weights, self.paths.checkpoint if resumed is not None else Path(self.init))
        self.model.to(self.device).eval()
        tune = FineTuneConfig(
            epochs=cfg.epochs, optim=cfg.optim, seed=cfg.seed, mixed_precision=True, num_workers=cfg.num_workers
        )
        self.tuner = self._tuner(tune)
        if resumed is not None:
            self.tuner.load_state_dict(resumed["finetune"])
            self.history = list(resumed["history"])
            self.best = dict(resumed["best"])
            log.info("resuming %s after epoch %d of %d", self.paths.checkpoint, self.tuner.epoch, cfg.epochs)

    def _read_subnet(self, path: Path) -> tuple[SearchSpace, Arch]:
        """The search space (every resolution allowed) and the canonical architecture of the subnet file."""
        space = create_search_space(self.cfg.search_space).unrestricted()
        return space, read_single_exit_subnet(path, space)

    def _build_model(self, weights: dict[str, torch.Tensor] | None, path: Path) -> nn.Module:
        """The network to train, with `weights` (read from `path`) loaded, else freshly initialised."""
        model = self.space.network_for(self.arch, self.n_classes, self.width_mult, self.structure)
        if weights is not None:
            self._load_weights(model, weights, path)
        return model

    def _tuner(self, tune: FineTuneConfig) -> EpochTrainer:
        """The training loop of `self.model`."""
        return FineTuner(self.model, self.splits, self.resolution, tune, self.device)

    def _init_path(self) -> Path | None:
        """The initial weights file, or None for `--from_scratch`."""
        if self.cfg.from_scratch:
            return None
        if self.cfg.init:
            return Path(self.cfg.init)
        for path in (self.paths.inherited, self.paths.search_ckpt):
            if path.is_file():
                return path
        raise UsageError(
            f"no weights to start from: neither {self.paths.inherited} nor {self.paths.search_ckpt} exists "
            "(pass --init PATH, or --from_scratch)"
        )

    def _validation_split(self, state: dict[str, Any] | None, path: Path | None) -> SplitSpec:
        """The split the starting weights record (the images they never trained on), else one carved with `--seed`."""
        cfg = self.cfg
        recorded = recorded_split(state, path) if state is not None and path is not None else None
        if recorded is None and state is not None and not cfg.resume:
            log.info(
                "%s records no validation split: carving one with --seed %d (it may hold images the weights "
                "trained on)",
                path,
                cfg.seed,
            )
        return validation_split(
            recorded, dataset=cfg.dataset, seed=cfg.seed, vld_size=cfg.vld_size, owner="the starting weights'"
        )

    def _check_weights(self, state: dict[str, Any], path: Path) -> tuple[dict[str, torch.Tensor], float]:
        """The state dict and width multiplier of an inherited-weights or `ckpt.pth` file, checked against the run."""
        if "arch" not in state:
            raise UsageError(f"{path} records no architecture ('arch'); expected a net.inherited or ckpt.pth file")
        self._check_arch(state, path)
        if "n_classes" in state and state["n_classes"] != self.n_classes:
            raise UsageError(
                f"{path} holds a {state['n_classes']}-class network but dataset {self.cfg.dataset} has "
                f"{self.n_classes} classes"
            )
        width_mult = float(state.get("width_mult", self.cfg.width_mult or 1.0))
        if self.cfg.width_mult is not None and width_mult != self.cfg.width_mult:
            raise UsageError(f"{path} holds a network of width {width_mult}, not --width_mult {self.cfg.width_mult}")
        return state_dict_of(state, path), width_mult

    def _check_arch(self, state: dict[str, Any], path: Path) -> None:
        """A `UsageError` unless the weights file at `path` (its `state`) records the run's architecture."""
        if validate_arch(state["arch"], str(path), self.space) != self.arch:
            raise UsageError(f"{path} holds weights of another architecture than {self.paths.subnet}")

    def _load_weights(self, module: nn.Module, weights: dict[str, torch.Tensor], path: Path) -> None:
        """Load `weights` (read from `path`) into `module`; a mismatch is a `UsageError`."""
        try:
            module.load_state_dict(weights)
        except (AssertionError, RuntimeError, KeyError, ValueError) as err:
            detail = " ".join(str(err).split())[:300] or type(err).__name__
            raise UsageError(f"{path} does not fit the network of {self.paths.subnet}: {detail}") from None

    def _read_resume_state(self) -> dict[str, Any]:
        path = self.paths.checkpoint
        if not path.is_file():
            raise UsageError(f"nothing to resume: no training checkpoint {path}")
        state: dict[str, Any] = read_checkpoint(path)
        if not {"config", "arch", "finetune", "best", "history", "init", "width_mult"} <= state.keys():
            raise UsageError(f"{path} is not a {self.program} checkpoint")
        if state["arch"] != self.arch:
            raise UsageError(f"{path} was written for another architecture than {self.paths.subnet}")
        stored, mine = state["config"], self.cfg.to_dict()
        changed = self.cfg.differences(stored)
        if changed:
            raise UsageError(
                f"{path} was written with other settings: "
                + ", ".join(f"--{k} {stored.get(k)!r} (now {mine[k]!r})" for k in changed)
            )
        return state

    def _read_search_stats(self) -> dict[str, Any] | None:
        """The search's numbers for this subnet, from the stats next to it (as an earlier run kept them)."""
        path = self.paths.search_stats
        if not path.is_file():
            return None
        try:
            previous = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            log.warning("%s is not valid JSON: it will be replaced without its numbers", path)
            return None
        if not isinstance(previous, dict):
            return None
        return previous.get("search") if "test_top1" in previous else previous

    def measure(self, split: str) -> float:
        """Top-1 (percent) on `split`; outputs that are not finite are a `UsageError` (broken or diverged weights)."""
        try:
            return accuracy(
                self.model, self.splits, split, self.resolution, batch_size=self.cfg.eval_batch_size, device=self.device
            )
        except FloatingPointError as err:
            raise not_finite(str(err)) from None

    def _validate(self) -> dict[str, Any]:
        """The current weights' numbers on the validation split, for the history; `valid_top1` selects the best."""
        return {"valid_top1": self.measure("valid")}

    def _rank(self, epoch: int, numbers: dict[str, Any]) -> list[Any]:
        """How good epoch `epoch` is by its validation `numbers`, compared as a list (greater is better): top-1."""
        return [numbers["valid_top1"]]

    def _end_epoch(self, loss: float | None) -> None:
        """Validate, record, keep the weights if they rank best so far (ties keep the earlier epoch)."""
        epoch = self.tuner.epoch
        numbers = self._validate()
        top1 = numbers["valid_top1"]
        self.history.append({"epoch": epoch, "train_loss": loss, **numbers})
        rank = self._rank(epoch, numbers)
        if not self.best or rank > self.best["rank"]:
            self.best = {"epoch": epoch, "valid_top1": top1, "rank": rank, "state_dict": cpu_state_dict(self.model)}
        log.info(
            "epoch %d/%d: %svalid top-1 %.2f%% (best %.2f%%, epoch %d)",
            epoch,
            self.cfg.epochs,
            "" if loss is None else f"loss {loss:.4f}, ",
            top1,
            self.best["valid_top1"],
            self.best["epoch"],
        )

    def _checkpoint(self) -> dict[str, Any]:
        """The model's `subnet_checkpoint` record, with what describes its network beyond the architecture."""
        return {
            **subnet_checkpoint(self.model, self.arch, self.n_classes, self.width_mult, self.split),
            **self.structure,
        }

    def save_checkpoint(self) -> None:
        """Write the per-epoch checkpoint (weights, optimiser, schedule, RNGs, best so far, history), atomically."""
        atomic_torch_save(
            self.paths.checkpoint,
            {
                **self._checkpoint(),
                "init": self.init,
                "finetune": self.tuner.state_dict(),
                "best": self.best,
                "history": self.history,
                "config": self.cfg.to_dict(),
            },
        )

    def train(self) -> None:
        """Epoch 0 (the starting weights), then every remaining epoch with a checkpoint after each."""
        cfg = self.cfg
        if not self.history:
            if cfg.n_bn_cal > 0:
                images = calibration_images(
                    self.splits,
                    self.resolution,
                    cfg.n_bn_cal,
                    batch_size=cfg.eval_batch_size,
                    seed=cfg.seed,
                    device=self.device,
                )
                recalibrate_bn(self.model, images)
            self._end_epoch(loss=None)
        steps = self.tuner.steps_per_epoch
        with tqdm(total=steps * cfg.epochs, initial=steps * self.tuner.epoch, desc="train", unit="step") as bar:
            while self.tuner.epoch < cfg.epochs:
                try:
                    loss = self.tuner.train_epoch(bar)
                except FloatingPointError as err:
                    raise UsageError(f"training diverged: {err}; try a lower --lr") from None
                self._end_epoch(loss)
                self.save_checkpoint()

    def _selected(self) -> dict[str, Any]:
        """The numbers of the selected weights that open `net.stats`; the test split is measured here, once."""
        if not self.structure:
            costs = self.space.cost_function(self.n_classes, self.width_mult)(self.arch)
        else:  # refined by an inner search, or cells DARTS found: the architecture's costs no longer describe it
            costs = self.space.measure(self.model, self.arch)
        return {
            "top1": self.best["valid_top1"],
            "valid_top1": self.best["valid_top1"],
            "test_top1": self.measure("test"),
            "best_epoch": self.best["epoch"],
            **costs.as_dict(),
        }

    def exportable(self) -> nn.Module:
        """The module `--export` writes."""
        return self.model

    def run(self) -> dict[str, Any]:
        """Train, select, test once, write `ckpt.pth`, the export and (last) the stats; returns the stats."""
        start = time.perf_counter()
        self.train()
        self.model.load_state_dict(self.best["state_dict"])
        stats: dict[str, Any] = {
            **self._selected(),
            **self.robustness.measure(
                self.model,
                self.splits,
                self.resolution,
                seed=self.cfg.seed,
                batch_size=self.cfg.eval_batch_size,
                device=self.device,
            ),
            "epochs": self.cfg.epochs,
            "seed": self.cfg.seed,
            "split": self.split.record(),
            "init": self.init,
            "n_classes": self.n_classes,
            "width_mult": self.width_mult,
            "history": self.history,
            "train_time_s": round(time.perf_counter() - start, 1),
            "config": self.cfg.to_dict(),
        }
        if self.search_stats is not None:
            stats["search"] = self.search_stats
        if self.cfg.export:
            path = export_model(self.cfg.export, self.exportable(), self.paths.export(self.cfg.export), self.resolution)
            log.info("exported %s", path)
        atomic_torch_save(self.paths.ckpt, self._checkpoint())
        write_json(self.paths.stats, stats)
        log.info(
            "%s: valid top-1 %.2f%% (selected: epoch %d of %d), test top-1 %.2f%% (measured once, on the selected "
            "weights); %.3f M params, %.3f M MACs; wrote %s and %s",
            self.paths.subnet,
            stats["valid_top1"],
            stats["best_epoch"],
            self.cfg.epochs,
            stats["test_top1"],
            stats["params"],
            stats["macs"],
            self.paths.ckpt,
            self.paths.stats,
        )
        return stats
