"""The `darts` evaluator: a short DARTS search of a skeleton's cells, then the network it found, trained briefly.

It serves the `darts` spaces (`search_space/darts.py`), whose architectures are macro skeletons. Per skeleton, the
training split is carved into two stratified halves with the run seed; DARTS (`dnas.darts.search`) trains the cell
supernet's weights on one and its architecture parameters (Adam at `--inner_lr`) on the other for `--inner_epochs`
epochs (`--inner_images` of each half per epoch), against `--inner_strength` times the expected cost of the search's
second objective (relative to uniform choices), and selects a genotype on the second half. The network of that
genotype is trained from fresh weights on the whole training split for `--n_epochs` epochs (`TRAIN_OPTIM`), validated
on the validation split (never the test split) and measured (`space.measure`): the record's costs are the found
network's, not the cost function's bounds.

Every skeleton sees the same images in the same order (common random numbers): the same skeleton and seed give the
same result. Besides `net_{i}.subnet` / `.stats` it writes `genotype.json` (`dnas.darts.genotype_record`) and
`ckpt.pth` (`found_checkpoint`, always: the network cannot be rebuilt from its skeleton alone), which
`load_found_network` and `train.py` rebuild.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from data import DatasetSplits, SplitSpec, batches, create_dataset
from data.splits import stratified_holdout
from dnas.darts import Genotype_CNN, genotype_record, read_genotype, search
from evaluator.base import EvalResult, OneByOneEvaluator, write_result
from evaluator.registry import register_evaluator
from hw import COST_MODELS
from hw.systolic import DEFAULT_ARRAY, SystolicArray
from search_space import Arch, SearchSpace, create_search_space
from search_space.darts import DartsSpace
from training.checkpoint import cpu_state_dict, read_checkpoint, recorded_split, state_dict_of
from training.config import OptimConfig
from training.evaluate import accuracy
from training.finetune import FineTuneConfig, fine_tune
from utils.device import resolve_device
from utils.errors import UsageError
from utils.io import atomic_torch_save, write_json

if TYPE_CHECKING:
    from search.config import SearchConfig

log = logging.getLogger(__name__)

TRAIN_OPTIM = OptimConfig(lr=0.025, weight_decay=3e-4)
"""How the found network is trained: DARTS's retraining SGD (lr 0.025, cosine, weight decay 3e-4), batches of 64."""
GENOTYPE_FILE = "genotype.json"
CKPT_FILE = "ckpt.pth"


def check_darts_space(space: SearchSpace) -> DartsSpace:
    """`space`, or a `UsageError` when it is not a darts space (a skeleton whose cells DARTS searches)."""
    if not isinstance(space, DartsSpace):
        raise UsageError(
            f"--evaluator darts searches the cells of DARTS skeletons, but --search_space {space.name} has none; "
            "use --search_space darts or darts1d"
        )
    return space


@dataclass(frozen=True)
class DartsEvalConfig:
    """How the darts evaluator measures a skeleton (picklable, so each worker can rebuild it).

    `seed` carves the validation split (`vld_size` images) and the two search halves, and seeds the search and the
    training. `inner_cost` is the `hw` cost whose expectation DARTS penalises with weight `inner_strength`;
    `inner_lr` is Adam's learning rate on the architecture parameters, `inner_images` the images of each half per
    search epoch (None: all).
    """

    search_space: str = "darts"
    dataset: str = "digits"
    data: str | None = None
    vld_size: int | None = None
    seed: int = 0
    inner_epochs: int = 1
    inner_strength: float = 0.0
    inner_cost: str | None = None
    inner_lr: float = 0.01
    inner_images: int | None = None
    n_epochs: int = 1
    optim: OptimConfig = TRAIN_OPTIM
    eval_batch_size: int = 256
    device: str = "auto"
    systolic_array: tuple[int, int] = DEFAULT_ARRAY

    def validate(self) -> DartsEvalConfig:
        """`self` after checking the values a user may get wrong (one `UsageError` naming the flag)."""
        check_darts_space(create_search_space(self.search_space))
        if self.inner_epochs < 1:
            raise UsageError(
                f"the darts evaluator searches cells for --inner_epochs >= 1 epochs, got {self.inner_epochs}"
            )
        if self.n_epochs < 1:
            raise UsageError(
                f"the darts evaluator trains each found network from fresh weights: --n_epochs must be >= 1, got "
                f"{self.n_epochs}"
            )
        if not self.inner_strength >= 0 or not self.inner_lr > 0:
            raise UsageError(
                f"need --inner_strength >= 0 and --inner_lr > 0, got {self.inner_strength}, {self.inner_lr}"
            )
        if self.inner_images is not None and self.inner_images < 2:
            raise UsageError(f"--inner_images must be >= 2 (none: all), got {self.inner_images}")
        if self.inner_strength > 0 and self.inner_cost not in COST_MODELS:
            raise UsageError(
                f"--inner_strength {self.inner_strength} weighs the DARTS search's expected cost of the second "
                f"objective, but --sec_obj {self.inner_cost} is not a cost ({', '.join(COST_MODELS.names())}); "
                "choose one of those or --inner_strength 0"
            )
        self.optim.validate()
        return self

    def dataset_splits(self) -> DatasetSplits:
        """The dataset, its validation split carved with `vld_size` and `seed`."""
        return create_dataset(self.dataset, data=self.data, vld_size=self.vld_size, seed=self.seed)

    def search_settings(self) -> dict[str, object]:
        """The DARTS search's settings besides the skeleton: epochs, seed, architecture learning rate, penalty."""
        mode = self.inner_cost if self.inner_strength > 0 else "none"
        return {
            "nas_budget": self.inner_epochs,
            "arch_learning_rate": self.inner_lr,
            "nas_optimization_mode": mode,
            "resource_weight": self.inner_strength,
            "hardware": SystolicArray(*self.systolic_array),
            "seed": self.seed,
            "progress": False,
        }


class SearchBatches:
    """Re-iterable training batches of one split, read by the cells' `reader`.

    Each pass draws a fresh shuffled, augmented order, of `limit` images (a fresh random subset; None: all).
    """

    def __init__(
        self,
        splits: DatasetSplits,
        split: str,
        resolution: int,
        batch_size: int,
        generator: torch.Generator,
        reader: nn.Module,
        limit: int | None,
    ) -> None:
        self.splits, self.split, self.resolution, self.batch_size = splits, split, resolution, batch_size
        self.generator = generator
        self.reader = reader
        self.limit = limit

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for x, y in batches(
            self.splits,
            self.split,
            self.resolution,
            self.batch_size,
            train=True,
            generator=self.generator,
            limit=self.limit,
        ):
            yield self.reader(x), y


def search_halves(splits: DatasetSplits, seed: int) -> DatasetSplits:
    """`splits` whose `train` and `valid` are two stratified halves of its training split, carved with `seed`.

    DARTS trains the weights on `train` and the architecture parameters on `valid`, and selects on `valid`.
    """
    weights, arch = stratified_holdout(splits.train.labels.numpy(), len(splits.train) // 2, np.random.default_rng(seed))
    return replace(splits, train=splits.train.subset(weights), valid=splits.train.subset(arch))


def found_checkpoint(
    network: nn.Module, arch: Arch, genotype: Genotype_CNN, space: DartsSpace, n_classes: int, split: SplitSpec
) -> dict[str, object]:
    """The `ckpt.pth` record of a found network: weights, skeleton, genotype, space, classes, validation split.

    Plain containers and tensors only, so `torch.load(weights_only=True)` reads it.
    """
    return {
        "state_dict": cpu_state_dict(network),
        "arch": arch,
        "genotype": genotype_record(genotype),
        "search_space": space.name,
        "n_classes": n_classes,
        "split": split.record(),
    }


@dataclass(frozen=True)
class FoundNetwork:
    """A network a darts evaluation found, as `load_found_network` rebuilt it."""

    network: nn.Module
    arch: Arch
    genotype: Genotype_CNN
    space: DartsSpace
    n_classes: int
    split: SplitSpec | None


def load_found_network(path: str | os.PathLike[str]) -> FoundNetwork:
    """The network in a darts evaluation's `ckpt.pth`, rebuilt with its weights (on the CPU, in eval mode).

    A file that is missing, unreadable or not such a record is a one-line `UsageError` naming it.
    """
    record = read_checkpoint(path)
    try:
        space = check_darts_space(create_search_space(str(record["search_space"]))).unrestricted()
        arch = space.validate(record["arch"])
        genotype = read_genotype(record["genotype"])
        n_classes = int(record["n_classes"])
        network = space.network(arch, n_classes, genotype)
        network.load_state_dict(state_dict_of(record, path))
    except KeyError as err:
        raise UsageError(f"{path} is not the checkpoint of a darts evaluation: it lacks {err}") from None
    except (UsageError, RuntimeError, TypeError, ValueError) as err:
        detail = " ".join(str(err).split())[:300]
        raise UsageError(f"{path} does not hold a network a darts evaluation found: {detail}") from None
    return FoundNetwork(network.eval(), arch, genotype, space, n_classes, recorded_split(record, path))


@register_evaluator("darts", help="DARTS searches the cells of each skeleton; the found network is trained briefly")
class DartsEvaluator(OneByOneEvaluator):
    """Searches the cells of `darts` skeletons, trains the found networks and measures them."""

    name = "darts"
    measures: ClassVar[tuple[str, ...]] = ("top1", "params", "macs", "activations", "peak_act", "latency")
    """Top-1 and every cost: the costs are the found network's, known only once it is measured."""

    @classmethod
    def writes_networks(cls, search: SearchConfig) -> bool:
        """Always: the found networks."""
        return True

    @classmethod
    def arguments(cls, search: SearchConfig) -> dict[str, object]:
        """`{"config": DartsEvalConfig}` for a search, checked, the dataset loaded once (a bad one fails here)."""
        if search.supernet_path is not None:
            raise UsageError(
                f"--supernet_path {search.supernet_path} is not used: --search_space {search.search_space} has no "
                "supernet (the darts evaluator searches and trains every network); leave it out"
            )
        config = DartsEvalConfig(
            search_space=search.search_space,
            dataset=search.dataset,
            data=search.data,
            vld_size=search.vld_size,
            seed=search.seed,
            inner_epochs=search.inner.inner_epochs,
            inner_strength=search.inner.inner_strength,
            inner_cost=search.sec_obj,
            inner_lr=search.inner.inner_lr,
            inner_images=search.inner.inner_images,
            n_epochs=search.n_epochs,
            optim=replace(TRAIN_OPTIM, sharpness=search.sharpness),
            device=search.device,
            systolic_array=search.array,
        ).validate()
        return {"config": replace(config, vld_size=len(config.dataset_splits().valid))}

    def __init__(self, config: DartsEvalConfig, device: str | None = None, splits: DatasetSplits | None = None) -> None:
        """`splits`, when given (a backend's shared copy), is used instead of loading `config.dataset_splits()`."""
        self.config = config.validate()
        self.device = resolve_device(device or config.device)
        self.splits: DatasetSplits = splits if splits is not None else config.dataset_splits()
        self.space = check_darts_space(create_search_space(config.search_space)).unrestricted()
        self.halves = search_halves(self.splits, config.seed)
        self.split = SplitSpec(config.dataset, config.seed, len(self.splits.valid))

    def evaluate_one(self, arch: Arch, out_dir: Path) -> EvalResult:
        """Search, train and measure one skeleton, and write its files into `out_dir`."""
        start = time.perf_counter()
        try:
            arch = self.space.validate(arch)
            genotype = self.search_cells(arch)
            network = self.train(arch, genotype)
            top1 = accuracy(
                network,
                self.splits,
                "valid",
                self.space.resolution(arch),
                batch_size=self.config.eval_batch_size,
                device=self.device,
            )
            costs = self.space.measure(network, arch, self.config.systolic_array)
            result = EvalResult(
                arch=arch,
                status="ok",
                top1=top1,
                params=costs.params,
                macs=costs.macs,
                activations=costs.activations,
                extras={"peak_act": costs.peak_act, "latency": costs.latency},
                wall_time_s=time.perf_counter() - start,
            )
            write_json(out_dir / GENOTYPE_FILE, genotype_record(genotype))
            n_classes = self.splits.n_classes
            record = found_checkpoint(network, arch, genotype, self.space, n_classes, self.split)
            atomic_torch_save(out_dir / CKPT_FILE, record)
        except Exception as err:
            log.warning("evaluation of %s failed: %s: %s", out_dir.name, type(err).__name__, err)
            result = EvalResult.failure(arch, err, time.perf_counter() - start)
        write_result(result, out_dir)
        return result

    def search_cells(self, arch: Arch) -> Genotype_CNN:
        """The genotype a DARTS search of `arch`'s cells selects (weights on one training half, alphas on the other)."""
        cfg = self.config
        darts = self.space.search_config(arch, self.splits.n_classes, **cfg.search_settings(), device=str(self.device))
        generator = torch.Generator().manual_seed(cfg.seed)
        r, reader = self.space.resolution(arch), self.space.reader()
        halves = ("train", "valid")
        loaders = [
            SearchBatches(self.halves, h, r, cfg.optim.batch_size, generator, reader, cfg.inner_images) for h in halves
        ]
        return search(darts, *loaders).genotype

    def train(self, arch: Arch, genotype: Genotype_CNN) -> nn.Module:
        """The network of `genotype` on `arch`, from seeded fresh weights, trained on the training split."""
        cfg = self.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            network = self.space.network(arch, self.splits.n_classes, genotype).to(self.device)
        tune = FineTuneConfig(epochs=cfg.n_epochs, optim=cfg.optim, seed=cfg.seed, mixed_precision=False)
        fine_tune(network, self.splits, self.space.resolution(arch), tune, self.device)
        return network
