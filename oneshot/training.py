"""Training a one-shot supernet with a sample strategy (`oneshot.sampling`): `train_supernet`.

Weights: SGD with Nesterov momentum from the `OptimConfig`, a cosine learning rate stepped once per optimiser step
over the whole run, cross-entropy with label smoothing, the dataset's training augmentation. A step of `uniform`
trains one path; a step of `fairstrict` accumulates the gradients of its group's paths on one batch (their mean, so
`--lr` means the same for every strategy; FairNAS sums, which would multiply the step size by the group size) and
steps once; a step of `differentiable` trains the weights through the Gumbel-softmax mixture (hard, straight-through;
or the plain softmax with `mode="softmax"`) on one batch, then the architecture parameters on the next training batch
with `ArchitectureStep` (cross-entropy plus `hardware_constraint_loss`). The temperature falls exponentially from
`tau_max` to `tau_min` over the run, step by step.

The run owns its random streams, all from `seed`: the image order and augmentation (a torch generator), the sample
strategy (a NumPy generator), the Gumbel noise (a torch generator) and torch's global stream for anything else
(forked, so the caller's global random state is left as it was). On CPU the same seed gives bit-identical weights;
on CUDA call `utils.seed.deterministic_torch` first.

`ArchitectureStep` and the architecture-optimiser registry `ARCH_OPTIMIZERS` (`sgd`, `adam`, `rmsprop`) are shared
with the differentiable search strategy (`oneshot.strategies`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from data import DatasetSplits, batches
from oneshot.hc_loss import hardware_constraint_loss
from oneshot.lut import HC_METRICS, LookupTable
from oneshot.sampling import SAMPLE_STRATEGIES, candidate_counts, create_sample_strategy
from oneshot.supernet import FORWARD_MODES, OneShotSupernet, gumbel_noise
from training.config import OptimConfig, first_failure
from utils.errors import UsageError
from utils.registry import Registry

log = logging.getLogger(__name__)

ARCH_MODES = tuple(mode for mode in FORWARD_MODES if mode != "path")
"""The forward modes that train architecture parameters: `gumbel` (hard, straight-through) and `softmax`."""


ARCH_OPTIMIZERS = Registry[torch.optim.Optimizer]("architecture optimiser")
"""Optimisers of the architecture parameters: `factory(params, ArchOptimConfig) -> torch.optim.Optimizer`."""


@ARCH_OPTIMIZERS.register("sgd", help="SGD with momentum --a-momentum")
def _sgd(params: Iterable[nn.Parameter], cfg: ArchOptimConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=cfg.a_lr, momentum=cfg.a_momentum, weight_decay=cfg.a_weight_decay)


@ARCH_OPTIMIZERS.register("adam", help="Adam, its first beta --a-momentum")
def _adam(params: Iterable[nn.Parameter], cfg: ArchOptimConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=cfg.a_lr, betas=(cfg.a_momentum, 0.999), weight_decay=cfg.a_weight_decay)


@ARCH_OPTIMIZERS.register("rmsprop", help="RMSprop with momentum --a-momentum")
def _rmsprop(params: Iterable[nn.Parameter], cfg: ArchOptimConfig) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, lr=cfg.a_lr, momentum=cfg.a_momentum, weight_decay=cfg.a_weight_decay)


@dataclass(frozen=True)
class ArchOptimConfig:
    """The optimiser of the architecture parameters (upstream's `--a-*` flags and defaults)."""

    a_optimizer: str = "sgd"
    a_lr: float = 0.05
    a_weight_decay: float = 4e-4
    a_momentum: float = 0.9

    def checks(self) -> dict[str, bool]:
        """Each check of a value a user may get wrong, keyed by the message naming the flag."""
        return {
            f"--a-optimizer must be one of {', '.join(ARCH_OPTIMIZERS.names())}, got {self.a_optimizer!r}": (
                self.a_optimizer in ARCH_OPTIMIZERS
            ),
            "--a-lr must be > 0": self.a_lr > 0,
            "--a-weight-decay must be >= 0": self.a_weight_decay >= 0,
            "--a-momentum must lie in [0, 1)": 0 <= self.a_momentum < 1,
        }

    def optimizer(self, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        """The configured optimiser of `params`."""
        return ARCH_OPTIMIZERS.get(self.a_optimizer)(params, self)


def hc_checks(
    hc_weight: float, target: int | None, hc_metric: str, mode: str, tau_max: float, tau_min: float
) -> dict[str, bool]:
    """The checks of the hardware-constraint and temperature settings shared by training and search configs."""
    return {
        "--hc-weight must be >= 0": hc_weight >= 0,
        "--target-hc must be > 0": target is None or target > 0,
        f"--hc-metric must be one of {', '.join(HC_METRICS)}, got {hc_metric!r}": hc_metric in HC_METRICS,
        f"--mode must be one of {', '.join(ARCH_MODES)}, got {mode!r}": mode in ARCH_MODES,
        "--tau-min must be > 0": tau_min > 0,
        "--tau-max must be >= --tau-min": tau_max >= tau_min,
    }


def temperature(step: int, total: int, tau_max: float, tau_min: float) -> float:
    """The Gumbel-softmax temperature at `step` of `total`: exponential from `tau_max` (first) to `tau_min` (last)."""
    if total <= 1:
        return tau_max
    return tau_max * (tau_min / tau_max) ** (step / (total - 1))


class ArchSettings(Protocol):
    """The architecture-update settings a training or search config shares (`SupernetTrainConfig`, ...)."""

    arch: ArchOptimConfig
    hc_weight: float
    target: int | None
    hc_metric: str
    mode: str


class ArchitectureStep:
    """One update of a supernet's architecture parameters on a batch: cross-entropy plus the hardware loss.

    The loss is the (unsmoothed) cross-entropy of the `mode` mixture plus, with a `target` (raw count),
    `hardware_constraint_loss(lut.expected(supernet.probabilities(), hc_metric), target, hc_weight)`. Only the
    architecture parameters get gradients and change; the weights' `.grad` is left alone.
    """

    def __init__(
        self,
        supernet: OneShotSupernet,
        lut: LookupTable | None,
        cfg: ArchOptimConfig,
        *,
        hc_weight: float,
        target: int | None,
        hc_metric: str,
        mode: str = "gumbel",
    ) -> None:
        if target is not None and lut is None:
            raise UsageError("a hardware target (--target-hc) needs the space's lookup table")
        self.supernet = supernet
        self.lut = lut
        self.hc_weight = hc_weight
        self.target = target
        self.hc_metric = hc_metric
        self.mode = mode
        self.params = list(supernet.arch_parameters())
        self.optimizer = cfg.optimizer(self.params)

    @classmethod
    def for_config(cls, supernet: OneShotSupernet, lut: LookupTable | None, config: ArchSettings) -> ArchitectureStep:
        """The step that a training or search config's architecture settings describe."""
        return cls(
            supernet,
            lut,
            config.arch,
            hc_weight=config.hc_weight,
            target=config.target,
            hc_metric=config.hc_metric,
            mode=config.mode,
        )

    def expected_cost(self) -> Tensor | None:
        """The differentiable expected cost (raw count, float64) of the current distribution; None without a table."""
        if self.lut is None:
            return None
        return self.lut.expected(self.supernet.probabilities(), metric=self.hc_metric)

    def step(self, x: Tensor, y: Tensor, tau: float, generator: torch.Generator | None) -> tuple[float, float]:
        """One optimiser step on `(x, y)`; returns the loss and the expected cost (NaN without a table) it saw."""
        logits = mixture_forward(self.supernet, x, self.mode, tau, generator)
        loss = F.cross_entropy(logits, y)
        expected = self.expected_cost()
        if self.target is not None and expected is not None:
            loss = loss + hardware_constraint_loss(expected, self.target, self.hc_weight).to(loss.dtype)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"non-finite architecture loss {value}")
        grads = torch.autograd.grad(loss, self.params, allow_unused=True)
        for p, g in zip(self.params, grads, strict=True):
            p.grad = torch.zeros_like(p) if g is None else g
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return value, float("nan") if expected is None else float(expected.detach())


def mixture_forward(
    supernet: OneShotSupernet, x: Tensor, mode: str, tau: float, generator: torch.Generator | None
) -> Tensor:
    """The logits of the candidates' mixture: hard straight-through Gumbel-softmax, or the plain softmax."""
    return supernet(x, mode=mode, tau=tau, hard=mode == "gumbel", generator=generator)


@dataclass(frozen=True)
class SupernetTrainConfig:
    """Everything that decides a supernet training run: strategy, length, optimisers, hardware target, seed.

    `steps_per_epoch` None is one pass over the training split (a `differentiable` step takes two batches);
    `target` is a raw count of `hc_metric` (None: no hardware term); `mode`, `tau_max`, `tau_min`, the `a_*`
    settings, `hc_weight` and `target` matter for the `differentiable` strategy only.
    """

    sample_strategy: str = "uniform"
    epochs: int = 1
    steps_per_epoch: int | None = None
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.05))
    arch: ArchOptimConfig = field(default_factory=ArchOptimConfig)
    hc_weight: float = 0.005
    target: int | None = None
    hc_metric: str = "macs"
    mode: str = "gumbel"
    tau_max: float = 5.0
    tau_min: float = 0.5
    seed: int = 0

    def checks(self) -> dict[str, bool]:
        """Each check of a value a user may get wrong, keyed by the message naming the flag."""
        strategies = ", ".join(SAMPLE_STRATEGIES.names())
        return {
            f"--sample-strategy must be one of {strategies}, got {self.sample_strategy!r}": (
                self.sample_strategy in SAMPLE_STRATEGIES
            ),
            "--epochs must be >= 1": self.epochs >= 1,
            "--steps-per-epoch must be >= 1": self.steps_per_epoch is None or self.steps_per_epoch >= 1,
            **self.optim.checks(),
            "supernet training supports --optim sgd only": not self.optim.sharpness.is_sam,
            **self.arch.checks(),
            **hc_checks(self.hc_weight, self.target, self.hc_metric, self.mode, self.tau_max, self.tau_min),
        }

    def validate(self) -> SupernetTrainConfig:
        """`self`, after every check passed (a `UsageError` with the first failure's message otherwise)."""
        first_failure(self.checks())
        return self


@dataclass
class SupernetTrainLog:
    """What a supernet training run did, step by step.

    `losses`: the weights' training loss per step (the mean over a group's paths); `counts[l][c]`: how many
    forward passes trained candidate c of layer l (one per path; for `differentiable` the candidate each hard Gumbel
    draw picked, or every candidate once per step in `softmax` mode); `arch_losses`, `expected_costs` (raw counts of
    `hc_metric`, as in each architecture step's loss) and `taus`: per step of `differentiable` (empty otherwise;
    costs NaN without a lookup table).
    """

    sample_strategy: str
    steps: int
    losses: list[float] = field(default_factory=list)
    counts: list[list[int]] = field(default_factory=list)
    arch_losses: list[float] = field(default_factory=list)
    expected_costs: list[float] = field(default_factory=list)
    taus: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly record of the log."""
        return asdict(self)


def steps_per_pass(n_train: int, batch_size: int, batches_per_step: int) -> int:
    """Steps in one pass over `n_train` training images (a final batch of one image is dropped)."""
    full, rest = divmod(n_train, batch_size)
    n_batches = full + (1 if rest > 1 else 0)
    if n_batches < batches_per_step:
        raise UsageError(f"the training split ({n_train} images) is too small for --batch_size {batch_size}")
    return n_batches // batches_per_step


def training_batches(
    splits: DatasetSplits, resolution: int, batch_size: int, generator: torch.Generator, device: torch.device
) -> Iterator[tuple[Tensor, Tensor]]:
    """Endless shuffled, augmented training batches: one pass after another, each in a new order from `generator`."""
    while True:
        empty = True
        for batch in batches(splits, "train", resolution, batch_size, train=True, generator=generator, device=device):
            empty = False
            yield batch
        if empty:
            raise UsageError(f"the training split ({len(splits.train)} images) yields no batch of {batch_size}")


def gumbel_generator(seed: int) -> torch.Generator:
    """The generator of the supernet's Gumbel noise (drawn on the CPU), seeded with `seed`."""
    return torch.Generator().manual_seed(seed)


def train_supernet(
    supernet: OneShotSupernet,
    splits: DatasetSplits,
    resolution: int,
    config: SupernetTrainConfig,
    lut: LookupTable | None,
    device: str | torch.device,
    progress: bool = True,
) -> SupernetTrainLog:
    """Train `supernet` in place on the training split at `resolution` as `config` says; returns the log.

    `lut` (the space's lookup table) is needed for a hardware `target`; without one a `differentiable` run logs no
    expected cost. The supernet is left in eval mode.
    """
    config.validate()
    device = torch.device(device)
    supernet.to(device)
    n_choices = list(supernet.spec.n_choices)
    strategy = create_sample_strategy(config.sample_strategy, n_choices, np.random.default_rng(config.seed))
    per_step = 2 if strategy.trains_architecture else 1
    steps = config.steps_per_epoch or steps_per_pass(len(splits.train), config.optim.batch_size, per_step)
    total = steps * config.epochs
    optimizer = config.optim.sgd(supernet.weight_parameters())
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    arch = None
    if strategy.trains_architecture:
        arch = ArchitectureStep.for_config(supernet, lut, config)
    stream = training_batches(
        splits, resolution, config.optim.batch_size, torch.Generator().manual_seed(config.seed), device
    )
    noise = gumbel_generator(config.seed)
    record = SupernetTrainLog(config.sample_strategy, total, counts=[[0] * n for n in n_choices])
    start = time.perf_counter()
    with (
        torch.random.fork_rng(devices=[device] if device.type == "cuda" else []),
        tqdm(total=total, desc=f"supernet ({config.sample_strategy})", unit="step", disable=not progress) as bar,
    ):
        torch.manual_seed(config.seed)
        supernet.train()
        for step in range(total):
            work = strategy.next_step()
            x, y = next(stream)
            tau = temperature(step, total, config.tau_max, config.tau_min)
            optimizer.zero_grad(set_to_none=True)
            if work.mixture:
                drawn = trained_candidates(supernet, config.mode, tau, noise.get_state())
                logits = mixture_forward(supernet, x, config.mode, tau, noise)
                loss = F.cross_entropy(logits, y, label_smoothing=config.optim.label_smoothing)
                loss.backward()
                value = float(loss.detach())
                for layer, candidates in enumerate(drawn):
                    for c in candidates:
                        record.counts[layer][c] += 1
            else:
                value = 0.0
                for path in work.paths:
                    loss = F.cross_entropy(supernet(x, list(path)), y, label_smoothing=config.optim.label_smoothing)
                    (loss / len(work.paths)).backward()
                    value += float(loss.detach()) / len(work.paths)
                for layer, row in enumerate(candidate_counts(work.paths, n_choices)):
                    for c, n in enumerate(row):
                        record.counts[layer][c] += n
            if not math.isfinite(value):
                raise FloatingPointError(f"non-finite training loss {value} at step {step + 1}")
            optimizer.step()
            scheduler.step()
            record.losses.append(value)
            if work.arch_update and arch is not None:
                xa, ya = next(stream)
                arch_loss, cost = arch.step(xa, ya, tau, noise)
                record.arch_losses.append(arch_loss)
                record.expected_costs.append(cost)
                record.taus.append(tau)
            bar.update(1)
            bar.set_postfix(loss=f"{value:.3f}")
    supernet.eval()
    record.seconds = time.perf_counter() - start
    log.info(
        "trained the supernet (%s) for %d steps in %.1f s, final loss %.4f",
        config.sample_strategy,
        total,
        record.seconds,
        record.losses[-1],
    )
    return record


def trained_candidates(supernet: OneShotSupernet, mode: str, tau: float, state: Tensor) -> list[list[int]]:
    """The candidates of each layer that a mixture forward from Gumbel generator state `state` trains.

    `softmax`: all of them. `gumbel` (hard): the one drawn, found by replaying the supernet's draws (one
    `gumbel_noise` per layer, in order, from the same CPU generator state).
    """
    if mode == "softmax":
        return [list(range(a.numel())) for a in supernet.arch_parameters()]
    replay = torch.Generator().set_state(state)
    drawn = []
    with torch.no_grad():
        for alpha in supernet.arch_parameters():
            noise = gumbel_noise(alpha.numel(), replay).to(alpha.device, alpha.dtype)
            drawn.append([int(F.softmax((alpha + noise) / tau, -1).argmax())])
    return drawn
