"""`search_and_get_model(args)`: a complete DARTS search from the familiar argument names.

The arguments (a namespace, a dict or a `DartsSearchConfig`) become one typed `DartsSearchConfig`; the loaders are
any re-iterable sources of `(x, y)` batches (a `DataLoader`, a list of batches), iterated once per epoch.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from dnas.darts.architect import Architect, ResourcePenalty, mode_cost
from dnas.darts.genotypes import Genotype_CNN
from dnas.darts.model import NetworkCnn
from dnas.darts.model_search_cnn import NetworkSearchCnn
from dnas.darts.network import check_reduction_cells
from dnas.darts.operations import SPACES
from hw import COST_MODELS, DEFAULT_HARDWARE, HardwareModel, create_hardware
from utils.device import resolve_device
from utils.errors import UsageError
from utils.seed import seed_everything

logger = logging.getLogger(__name__)
Batches = Iterable[tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class DartsSearchConfig:
    """Every setting of a search; names follow the upstream arguments.

    `nas_budget` is the number of search epochs. The resource target is separate: `nas_optimization_mode`
    (`none`, `Memory`: parameters, `Compute`: MACs, or any `hw` cost model name; `latency` runs on the `hw`
    hardware model `hardware`) with `resource_weight` and an optional `resource_budget` (see `ResourcePenalty`).
    `search_space` `auto` is `1d` when the inputs have width 1, else `2d`; `primitives` defaults to the space's
    default primitives (`default_primitives(space)`); `nas_reduction_cells` are the indices of the reducing cells
    (default: one and two thirds of the depth). `hardware` is a `hw` hardware model name or instance.
    """

    nas_init_channels: int = 16
    num_classes: int = 10
    nas_layers: int = 8
    in_channels: int = 3
    with_input_batchnorm: bool = False
    nas_nodes_per_layer: int = 4
    nas_multiplier: int = 4
    nas_stem_multiplier: int = 3
    nas_reduction_cells: tuple[int, ...] | None = None
    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    nas_budget: int = 50
    nas_optimization_mode: str = "none"
    resource_weight: float = 1.0
    resource_budget: float | None = None
    beta_decay: float = 0.0
    grad_clip: float = 5.0
    unrolled: bool = False
    arch_learning_rate: float = 3e-4
    arch_weight_decay: float = 1e-3
    search_space: str = "auto"
    primitives: tuple[str, ...] | None = None
    hardware: str | HardwareModel = DEFAULT_HARDWARE
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        positive = ("nas_init_channels", "num_classes", "nas_layers", "in_channels", "nas_nodes_per_layer")
        positive += ("nas_multiplier", "nas_stem_multiplier", "nas_budget")
        bad = [f"{n}={getattr(self, n)}" for n in positive if getattr(self, n) < 1]
        bad += [f"{n}={getattr(self, n)}" for n in ("lr", "arch_learning_rate", "grad_clip") if getattr(self, n) <= 0]
        bad += [f"{n}={getattr(self, n)}" for n in ("momentum", "weight_decay", "beta_decay") if getattr(self, n) < 0]
        if bad:
            raise UsageError(f"invalid DARTS search settings: {', '.join(bad)}")
        mode_cost(self.nas_optimization_mode)
        create_hardware(self.hardware)
        check_reduction_cells(self.nas_layers, self.nas_reduction_cells)
        if self.search_space not in ("auto", *SPACES):
            raise UsageError(f"unknown search_space {self.search_space!r}; choose auto, {', '.join(SPACES)}")

    @classmethod
    def from_args(cls, args: object) -> DartsSearchConfig:
        """From a namespace, a dict or a config; unknown names are a `UsageError`, loaders are ignored."""
        if isinstance(args, cls):
            return args
        values = dict(args) if isinstance(args, Mapping) else dict(vars(args))
        values = {k: v for k, v in values.items() if k not in ("train_loader", "valid_loader")}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UsageError(f"unknown DARTS search arguments: {', '.join(unknown)}")
        for name in ("primitives", "nas_reduction_cells"):
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        try:
            return cls(**values)
        except TypeError as err:  # a wrongly typed value compared with a number
            raise UsageError(f"invalid DARTS search settings: {err}") from None


@dataclass
class SearchResult:
    """What a search found: the network of the selected genotype (fresh weights) and the per-epoch record."""

    model: NetworkCnn
    genotype: Genotype_CNN
    best_epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: Batches, device: torch.device) -> tuple[float, float]:
    """Mean cross-entropy and top-1 (%) of `model` over `batches`."""
    model.eval()
    loss = correct = total = 0.0
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += float((logits.argmax(1) == y).sum())
        total += len(y)
    if not total:
        raise UsageError("the validation loader gave no batches")
    return loss / total, 100.0 * correct / total


def _train_epoch(
    network: NetworkSearchCnn,
    architect: Architect,
    optimizer: torch.optim.Optimizer,
    config: DartsSearchConfig,
    train_loader: Batches,
    valid_loader: Batches,
    device: torch.device,
    epoch: int,
) -> tuple[float, float]:
    """One epoch: per training batch, an architecture step on the next validation batch, then a weight step."""
    network.train()
    lr = optimizer.param_groups[0]["lr"]
    valid = iter(valid_loader)
    loss_sum = correct = total = 0.0
    bar = tqdm(train_loader, desc=f"darts epoch {epoch}", leave=False, disable=not config.progress or None)
    for x, y in bar:
        try:
            x_v, y_v = next(valid)
        except StopIteration:
            valid = iter(valid_loader)
            x_v, y_v = next(valid)
        x, y, x_v, y_v = x.to(device), y.to(device), x_v.to(device), y_v.to(device)
        architect.step(x, y, x_v, y_v, lr, optimizer)
        logits = network(x)
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.net_parameters(), config.grad_clip)
        optimizer.step()
        loss_sum += loss.item() * len(y)
        correct += float((logits.argmax(1) == y).sum())
        total += len(y)
        bar.set_postfix(loss=f"{loss_sum / total:.3f}")
    if not total:
        raise UsageError("the training loader gave no batches")
    return loss_sum / total, 100.0 * correct / total


def search(config: DartsSearchConfig, train_loader: Batches, valid_loader: Batches) -> SearchResult:
    """Run a DARTS search; select the epoch whose supernet has the lowest validation objective (CE + penalty)."""
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(config.seed)
    seed_everything(config.seed)
    device = resolve_device(config.device)
    first_x, _ = next(iter(train_loader))
    input_shape = tuple(first_x.shape[1:])
    if len(input_shape) != 3 or input_shape[0] != config.in_channels:
        raise UsageError(f"expected batches shaped (B, {config.in_channels}, H, W), got {tuple(first_x.shape)}")
    space = config.search_space if config.search_space != "auto" else ("1d" if input_shape[2] == 1 else "2d")
    network = NetworkSearchCnn(
        config.nas_init_channels,
        config.num_classes,
        config.nas_layers,
        input_shape,
        with_input_batchnorm=config.with_input_batchnorm,
        nodes_per_layer=config.nas_nodes_per_layer,
        multiplier=config.nas_multiplier,
        stem_multiplier=config.nas_stem_multiplier,
        space=space,
        primitives=list(config.primitives) if config.primitives else None,
        regularizer=mode_cost(config.nas_optimization_mode) or "params",
        generator=generator,
        hardware=config.hardware,
        reduction_cells=config.nas_reduction_cells,
    ).to(device)
    penalty = ResourcePenalty(config.nas_optimization_mode, config.resource_weight, config.resource_budget)
    architect = Architect(
        network,
        arch_learning_rate=config.arch_learning_rate,
        arch_weight_decay=config.arch_weight_decay,
        unrolled=config.unrolled,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        penalty=penalty,
        beta_weight=config.beta_decay,
    )
    optimizer = torch.optim.SGD(
        network.net_parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.nas_budget, eta_min=config.lr_min)
    valid_loss, valid_top1 = evaluate(network, valid_loader, device)
    history: list[dict[str, Any]] = [{"epoch": 0, "valid_loss": valid_loss, "valid_top1": valid_top1}]
    best: tuple[float, int, Genotype_CNN] = (math.inf, 0, network.genotype())
    for epoch in range(1, config.nas_budget + 1):
        train_loss, train_top1 = _train_epoch(
            network, architect, optimizer, config, train_loader, valid_loader, device, epoch
        )
        schedule.step()
        valid_loss, valid_top1 = evaluate(network, valid_loader, device)
        with torch.no_grad():
            penalty_value = float(architect.regularization())
            expected = {e.name: float(network.expected_cost(e.name)) for e in COST_MODELS.entries()}
        genotype = network.genotype()
        record = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_top1": train_top1,
            "valid_loss": valid_loss,
            "valid_top1": valid_top1,
            "penalty": penalty_value,
            "expected_cost": expected,
            "genotype": genotype._asdict(),
        }
        history.append(record)
        logger.info(
            "epoch %d/%d: train loss %.3f top-1 %.1f%%, valid loss %.3f top-1 %.1f%%, penalty %.4f, expected %s, %s",
            epoch, config.nas_budget, train_loss, train_top1, valid_loss, valid_top1, penalty_value, expected, genotype,
        )  # fmt: skip
        objective = valid_loss + penalty_value
        if objective < best[0]:
            best = (objective, epoch, genotype)
    _, best_epoch, genotype = best
    model = NetworkCnn(genotype=genotype, **network.config).to(device)
    logger.info("selected epoch %d: %s", best_epoch, genotype)
    return SearchResult(model, genotype, best_epoch, history, time.perf_counter() - start)


def search_and_get_model(args: object) -> NetworkCnn:
    """Search with `args` (namespace or dict with `train_loader`, `valid_loader` and settings); the found network."""
    values = args if isinstance(args, Mapping) else vars(args)
    missing = [k for k in ("train_loader", "valid_loader") if values.get(k) is None]
    if missing:
        raise UsageError(f"search_and_get_model needs {', '.join(missing)}")
    return search(DartsSearchConfig.from_args(args), values["train_loader"], values["valid_loader"]).model
