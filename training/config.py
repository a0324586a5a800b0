"""Training settings: `OptimConfig`, shared by every trainer, and `NetTrainConfig`, the run of `train.py`.

A config nests an `OptimConfig` under `optim` (which nests the `SharpnessConfig` of SAM under `sharpness`); its flags
and its `config` record stay flat (`--lr`, `"lr"`, `--optim`, `"optim"`) through `utils.cli.flat_record` and
`add_dataclass_flags`. Each user gives its own default instance (supernet training starts at lr 0.05, fine-tuning at
0.01).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import nn

from data import DATASETS, list_datasets
from deploy import list_formats
from robustness.config import OOD_FILES_HELP, ROBUST_HELP, RobustConfig
from robustness.flatness import FlatnessConfig
from robustness.sam import SAM
from search_space import SEARCH_SPACES
from utils.cli import flat_record
from utils.errors import UsageError

OPTIMIZERS = ("sgd", "sam", "asam")
"""The choices of `--optim`: plain SGD, SAM over it, adaptive SAM (ASAM) over it."""


def first_failure(checks: dict[str, bool]) -> None:
    """Raise a `UsageError` with the message of the first failed check, if any."""
    failed = [message for message, ok in checks.items() if not ok]
    if failed:
        raise UsageError(failed[0])


OPTIM_HELP = {
    "lr": "initial learning rate of the cosine schedule",
    "momentum": "SGD (Nesterov) momentum",
    "weight_decay": "SGD weight decay",
    "label_smoothing": "label smoothing of the cross-entropy loss",
    "batch_size": "training batch size",
    "optim": "optimiser: sgd (Nesterov); sam: sharpness-aware minimisation around it (two forward and backward "
    "passes per step, full precision); asam: adaptive SAM, its neighbourhood scaled by |w| (as sam --adaptive)",
    "rho": "radius of the neighbourhood whose worst loss SAM / ASAM minimises (--optim sam or asam)",
    "adaptive": "make --optim sam adaptive (ASAM)",
}
"""The help of `OptimConfig`'s flags, shared by every command line that nests it."""


@dataclass(frozen=True)
class SharpnessConfig:
    """Sharpness-aware minimisation: `sgd` (none), `sam` (Foret et al. 2021) or `asam` (Kwon et al. 2021)."""

    optim: str = "sgd"
    rho: float = 0.05
    adaptive: bool = False

    @property
    def is_sam(self) -> bool:
        """Whether training runs SAM or ASAM (two forward and backward passes per step)."""
        return self.optim in ("sam", "asam")

    @property
    def is_adaptive(self) -> bool:
        """Whether it is ASAM (`--optim asam`, or `--optim sam --adaptive`)."""
        return self.optim == "asam" or (self.optim == "sam" and self.adaptive)

    def checks(self) -> dict[str, bool]:
        """Each check of a value a user may get wrong, keyed by the message naming the flag."""
        return {
            f"--optim must be one of {', '.join(OPTIMIZERS)}, got {self.optim!r}": self.optim in OPTIMIZERS,
            "--rho must be > 0": self.rho > 0,
            "--adaptive needs --optim sam or asam": not (self.adaptive and self.optim == "sgd"),
        }


@dataclass(frozen=True)
class OptimConfig:
    """The optimiser and loss of a training run: SGD with Nesterov momentum (or SAM around it), smoothed labels."""

    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 3e-5
    label_smoothing: float = 0.1
    batch_size: int = 64
    sharpness: SharpnessConfig = field(default_factory=SharpnessConfig)

    def checks(self) -> dict[str, bool]:
        """Each check of a value a user may get wrong, keyed by the message naming the flag."""
        return {
            "--lr must be > 0": self.lr > 0,
            "--momentum must lie in [0, 1)": 0 <= self.momentum < 1,
            "--weight_decay must be >= 0": self.weight_decay >= 0,
            "--label_smoothing must lie in [0, 1)": 0 <= self.label_smoothing < 1,
            "--batch_size must be >= 2": self.batch_size >= 2,
            **self.sharpness.checks(),
        }

    def validate(self) -> OptimConfig:
        """`self`, after every check passed (a `UsageError` with the first failure's message otherwise)."""
        first_failure(self.checks())
        return self

    def sgd(self, params: Iterable[nn.Parameter] | Iterable[dict[str, Any]]) -> torch.optim.SGD:
        """The SGD (Nesterov) optimiser of `params` at the initial learning rate."""
        return torch.optim.SGD(
            params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay, nesterov=True
        )

    def optimizer(self, params: Iterable[nn.Parameter]) -> torch.optim.SGD | SAM:
        """The optimiser of `params`: `sgd()`, or with `--optim sam|asam` a `SAM` around it."""
        if not self.sharpness.is_sam:
            return self.sgd(params)
        return SAM(params, self.sgd, rho=self.sharpness.rho, adaptive=self.sharpness.is_adaptive)


NET_TRAIN_HELP = {
    "subnet": "the chosen architecture's net.subnet (JSON: ks, e, d, r)",
    "init": "weights to start from; none: net.inherited next to the subnet, else ckpt.pth there",
    "from_scratch": "start from freshly initialised weights instead",
    "save": "folder for ckpt.pth, net.stats, the checkpoint and exports; none: the subnet's folder",
    "search_space": f"search space of the subnet. {SEARCH_SPACES.describe()}",
    "dataset": f"dataset. {DATASETS.describe()}",
    "data": "dataset folder",
    "n_classes": "number of classes (checked against the dataset)",
    "vld_size": "validation images carved from the training set (default: the supernet's split, from net.inherited)",
    "width_mult": "supernet width multiplier; none: as recorded with the weights, else 1.0",
    "epochs": "fine-tuning epochs (0: measure and export the given weights)",
    **OPTIM_HELP,
    "eval_batch_size": "batch size for validation and test",
    "n_bn_cal": "training images to re-estimate batch-norm statistics on before training (0: keep them)",
    "seed": "fixes every random source of the run (the validation split is the supernet's, when recorded)",
    "device": "auto, cpu, cuda or cuda:N",
    "num_workers": "image-decoding processes for datasets stored as files",
    "resume": "continue from the per-epoch checkpoint",
    "export": f"also write the network in this format: {', '.join(list_formats())}",
    **{flag: f"{text} (of the selected weights)" for flag, text in ROBUST_HELP.items()},
    **OOD_FILES_HELP,
}
"""The help of `NetTrainConfig`'s flags, shared by `train.py` and the command lines of configs extending it."""


@dataclass(frozen=True)
class NetTrainConfig:
    """Everything that defines a fine-tuning run of one chosen network. Flag names follow upstream CNAS."""

    subnet: str = ""
    init: str | None = None
    from_scratch: bool = False
    save: str | None = None
    search_space: str = "ofa_mbv3"
    dataset: str = "digits"
    data: str | None = None
    n_classes: int | None = None
    vld_size: int | None = None
    width_mult: float | None = None
    epochs: int = 10
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval_batch_size: int = 256
    n_bn_cal: int = 500
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    resume: bool = False
    export: str | None = None
    robust: RobustConfig = field(default_factory=RobustConfig)
    ood_data: str | None = None
    ood_reference: str | None = None

    RESUMABLE_CHANGES = (
        "subnet",
        "save",
        "resume",
        "export",
        "device",
        "num_workers",
        "eval_batch_size",
        *(f.name for f in fields(RobustConfig) if f.name != "flatness"),
        *(f.name for f in fields(FlatnessConfig)),
        "ood_data",
        "ood_reference",
    )
    """Settings that may differ when a run is resumed: where things are, how it runs, what is measured at the end."""

    def checks(self) -> dict[str, bool]:
        """Each check of a value a user may get wrong, keyed by the message naming the flag."""
        return {
            "--subnet is required (the net.subnet file of a chosen architecture)": bool(self.subnet),
            "--init and --from_scratch exclude each other": not (self.init and self.from_scratch),
            "--epochs must be >= 0": self.epochs >= 0,
            **self.optim.checks(),
            "--eval_batch_size must be >= 1": self.eval_batch_size >= 1,
            "--n_bn_cal must be >= 0": self.n_bn_cal >= 0,
            "--n_classes must be >= 2": self.n_classes is None or self.n_classes >= 2,
            "--width_mult must be > 0": self.width_mult is None or self.width_mult > 0,
            "--num_workers must be >= 0": self.num_workers >= 0,
        }

    def validate(self) -> NetTrainConfig:
        """`self`, after checking every value a user may get wrong (a `UsageError` naming the flag otherwise)."""
        if self.dataset not in list_datasets():
            raise UsageError(f"unknown dataset {self.dataset!r}; choose one of: {', '.join(list_datasets())}")
        if self.export is not None and self.export not in list_formats():
            raise UsageError(f"unknown --export format {self.export!r}; choose one of: {', '.join(list_formats())}")
        first_failure(self.checks())
        return self

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON-friendly record (one key per flag), stored in `net.stats` and in the training checkpoint."""
        return flat_record(self)

    def differences(self, stored: dict[str, Any]) -> list[str]:
        """Flags whose values differ from a stored record, ignoring those a resume may change."""
        mine = self.to_dict()
        return sorted(k for k in mine if k not in self.RESUMABLE_CHANGES and stored.get(k, mine[k]) != mine[k])
