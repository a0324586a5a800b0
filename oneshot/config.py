"""The settings of a one-shot search (`python -m oneshot.search`), one typed record built from the command line.

`OneShotSearchConfig` holds every flag; `training()` and `strategy()` give the configs of the two phases, with the
hardware target (`--target-hc`, in millions of `--hc-metric`) converted to the raw counts of the lookup tables in
one place. The flags follow the upstream one-shot NAS example (`--search-space`, `--sample-strategy`,
`--target-hc`, ...); each is also accepted with underscores.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data import DATASETS
from oneshot.hc_loss import to_count
from oneshot.lut import HC_METRICS
from oneshot.sampling import SAMPLE_STRATEGIES
from oneshot.spaces import ONESHOT_SPACES, SCALES
from oneshot.strategies import SEARCH_STRATEGIES, SearchStrategyConfig
from oneshot.supernet import FORWARD_MODES
from oneshot.training import ARCH_OPTIMIZERS, ArchOptimConfig, SupernetTrainConfig
from training.config import OptimConfig, first_failure
from utils.cli import flat_record
from utils.errors import UsageError


@dataclass(frozen=True)
class OneShotSearchConfig:
    """Everything that defines a one-shot search: space, data, supernet training, search strategy, target, seed."""

    title: str = "oneshot"
    save: str = "results/oneshot"
    search_space: str = "proxyless"
    scale: str = "cifar"
    width_mult: float = 1.0
    resolution: int = 32
    dataset: str = "digits"
    data: str | None = None
    vld_size: int | None = None
    supernet: str | None = None
    sample_strategy: str = "uniform"
    epochs: int = 10
    steps_per_epoch: int | None = None
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    batch_size: int = 64
    search_strategy: str = "evolution"
    target_hc: float | None = None
    hc_metric: str = "macs"
    hc_weight: float = 0.005
    random_iteration: int = 1000
    generation_num: int = 20
    population: int = 60
    parent_num: int = 10
    mutation_prob: float = 0.1
    search_steps: int = 100
    arch: ArchOptimConfig = field(default_factory=ArchOptimConfig)
    mode: str = "gumbel"
    tau_max: float = 5.0
    tau_min: float = 0.5
    n_bn_cal: int = 500
    valid_limit: int | None = None
    eval_batch_size: int = 256
    seed: int = 0
    device: str = "auto"

    def checks(self) -> dict[str, bool]:
        """Each check of a value a user may get wrong that the phases' own configs do not make, keyed by message."""
        return {
            "--title must be a plain folder name (no / or ..)": bool(self.title)
            and Path(self.title).name == self.title
            and self.title not in (".", ".."),
            "--width-mult must be > 0": self.width_mult > 0,
            "--resolution must be >= 8": self.resolution >= 8,
            "--target-hc must be > 0 (millions)": self.target_hc is None or self.target_hc > 0,
            "--n-bn-cal must be >= 0": self.n_bn_cal >= 0,
            "--valid-limit must be >= 1": self.valid_limit is None or self.valid_limit >= 1,
            "--eval-batch-size must be >= 1": self.eval_batch_size >= 1,
            "--vld-size must be >= 1": self.vld_size is None or self.vld_size >= 1,
        }

    def validate(self) -> OneShotSearchConfig:
        """`self` after every check of both phases passed (a one-line `UsageError` naming the flag otherwise)."""
        for flag, value, registry in (
            ("--search-space", self.search_space, ONESHOT_SPACES),
            ("--sample-strategy", self.sample_strategy, SAMPLE_STRATEGIES),
            ("--search-strategy", self.search_strategy, SEARCH_STRATEGIES),
            ("--dataset", self.dataset, DATASETS),
            ("--a-optimizer", self.arch.a_optimizer, ARCH_OPTIMIZERS),
        ):
            if value not in registry:
                raise UsageError(f"unknown {flag} {value!r}; choose one of: {', '.join(registry.names())}")
        for flag, value, choices in (
            ("--scale", self.scale, SCALES),
            ("--hc-metric", self.hc_metric, HC_METRICS),
            ("--mode", self.mode, FORWARD_MODES[1:]),
        ):
            if value not in choices:
                raise UsageError(f"unknown {flag} {value!r}; choose one of: {', '.join(choices)}")
        first_failure(self.checks())
        self.training().validate()
        self.strategy().validate()
        return self

    @property
    def target(self) -> int | None:
        """The hardware target as a raw count of `hc_metric` (the lookup tables' unit), None without one."""
        return to_count(self.target_hc)

    def optim(self) -> OptimConfig:
        """The weights' optimiser settings."""
        return OptimConfig(
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            label_smoothing=self.label_smoothing,
            batch_size=self.batch_size,
        )

    def training(self) -> SupernetTrainConfig:
        """The supernet training phase."""
        return SupernetTrainConfig(
            sample_strategy=self.sample_strategy,
            epochs=self.epochs,
            steps_per_epoch=self.steps_per_epoch,
            optim=self.optim(),
            arch=self.arch,
            hc_weight=self.hc_weight,
            target=self.target,
            hc_metric=self.hc_metric,
            mode=self.mode,
            tau_max=self.tau_max,
            tau_min=self.tau_min,
            seed=self.seed,
        )

    def strategy(self) -> SearchStrategyConfig:
        """The search phase."""
        return SearchStrategyConfig(
            random_iteration=self.random_iteration,
            generation_num=self.generation_num,
            population=self.population,
            parent_num=self.parent_num,
            mutation_prob=self.mutation_prob,
            arch=self.arch,
            hc_weight=self.hc_weight,
            target=self.target,
            hc_metric=self.hc_metric,
            search_steps=self.search_steps,
            batch_size=self.batch_size,
            mode=self.mode,
            tau_max=self.tau_max,
            tau_min=self.tau_min,
            seed=self.seed,
        )

    def supernet_record(self) -> dict[str, Any]:
        """The settings that decide the trained supernet (stored in its card; a rerun with equal ones reuses it).

        With `--sample-strategy differentiable` the hardware target and loss shape the training too.
        """
        keys = ["search_space", "scale", "width_mult", "resolution", "dataset", "vld_size", "sample_strategy"]
        keys += ["epochs", "steps_per_epoch", "lr", "momentum", "weight_decay", "label_smoothing", "batch_size", "seed"]
        if SAMPLE_STRATEGIES.get(self.sample_strategy).trains_architecture:
            keys += ["target_hc", "hc_metric", "hc_weight", *flat_record(self.arch), "mode", "tau_max", "tau_min"]
        record = flat_record(self)
        return {k: record[k] for k in keys}

    def folder(self) -> Path:
        """The experiment's folder: `<save>/<title>`."""
        return Path(self.save) / self.title

    def to_dict(self) -> dict[str, Any]:
        """The flat record of every flag (one key per flag, underscores), as written to the results."""
        return flat_record(self)

    def replace(self, **changes: Any) -> OneShotSearchConfig:
        """A copy with `changes`."""
        return dataclasses.replace(self, **changes)


HELP: dict[str, str] = {
    "title": "experiment name: the results go to <save>/<title>",
    "save": "folder holding the experiments",
    "search_space": f"one-shot search space. {ONESHOT_SPACES.describe()}",
    "scale": "cifar (stem and first stage at stride 1) or imagenet (the paper's strides)",
    "width_mult": "width multiplier of every layer (multiples of 8)",
    "resolution": "input resolution",
    "dataset": f"dataset. {DATASETS.describe()}",
    "data": "dataset folder",
    "vld_size": "validation images carved from the training set (scoring uses them, never the test set)",
    "supernet": "a supernet.pth written by an earlier run to search instead of training one",
    "sample_strategy": f"how the supernet is trained. {SAMPLE_STRATEGIES.describe()}",
    "epochs": "supernet training epochs",
    "steps_per_epoch": "training steps per epoch (none: one pass over the training split)",
    "lr": "initial learning rate of the weights (cosine schedule)",
    "momentum": "SGD momentum of the weights",
    "weight_decay": "weight decay of the weights",
    "label_smoothing": "label smoothing of the training loss",
    "batch_size": "training batch size",
    "search_strategy": f"how the trained supernet is searched. {SEARCH_STRATEGIES.describe()}",
    "target_hc": "hardware target in millions of --hc-metric; paths over it are never chosen (none: no target)",
    "hc_metric": f"metric of the hardware target: {', '.join(HC_METRICS)} (flops = 2 x macs)",
    "hc_weight": "weight of the hardware-constraint loss hc_weight * max(0, E[cost] - target) / target",
    "random_iteration": "random_search: paths sampled",
    "generation_num": "evolution: generations",
    "population": "evolution: population size",
    "parent_num": "evolution: parents kept per generation",
    "mutation_prob": "evolution: probability of redrawing each layer when mutating",
    "search_steps": "differentiable: architecture steps of the search",
    "a_optimizer": f"optimiser of the architecture parameters. {ARCH_OPTIMIZERS.describe()}",
    "a_lr": "learning rate of the architecture parameters",
    "a_weight_decay": "weight decay of the architecture parameters",
    "a_momentum": "momentum of the architecture parameters",
    "mode": "differentiable: gumbel (hard straight-through Gumbel-softmax, annealed) or softmax mixture",
    "tau_max": "Gumbel temperature at the start",
    "tau_min": "Gumbel temperature at the end",
    "n_bn_cal": "training images to recalibrate batch norm on before scoring each path",
    "valid_limit": "score on the first N validation images only (none: all)",
    "eval_batch_size": "batch size of scoring",
    "seed": "fixes every random source of the run",
    "device": "auto, cpu, cuda or cuda:N",
}
"""The help of every flag of `python -m oneshot.search`."""
