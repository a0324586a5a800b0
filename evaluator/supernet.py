"""The `supernet` evaluator: inherit weights, recalibrate batch norm, optionally fine-tune, validate.

It serves any search space whose bundle has a supernet (`build_supernet`, `load_supernet`, `extract`) and an exact
`cost_function`; nothing here knows a space's fields.

Every architecture is recalibrated (and fine-tuned) on the same images in the same order, drawn from the run seed:
common random numbers, so differences between two architectures' accuracies are not differences of luck. The
validation split is the supernet's own (`supernets.card.card_split`: the images it never trained on), whatever the
run seed; only weights without a card carve it with the search's `--seed`. Every input is checked by `arguments`,
before anything is evaluated: the dataset is loaded and the supernet once, so a bad one is a one-line `UsageError`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from torch import nn

from data import DatasetSplits, SplitSpec, create_dataset, validation_split
from dnas.inner import InnerConfig, refine
from dnas.refined import module_specs, rebuild, refined_record
from evaluator.base import EvalResult, OneByOneEvaluator, write_result
from evaluator.registry import register_evaluator
from hw.metrics import COST_KEYS
from hw.systolic import DEFAULT_ARRAY, SystolicArray
from robustness.config import RobustConfig
from robustness.measure import RobustnessMeasurement
from search_space import Arch, SearchSpace, create_search_space
from supernets.card import card_split
from training.bn import recalibrate_bn
from training.checkpoint import CheckpointError, subnet_checkpoint
from training.config import OptimConfig
from training.evaluate import accuracy, calibration_images
from training.finetune import FineTuneConfig, fine_tune
from utils.device import resolve_device
from utils.errors import UsageError
from utils.io import atomic_torch_save

if TYPE_CHECKING:
    from search.config import SearchConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SupernetEvalConfig:
    """How the supernet evaluator measures an architecture (picklable, so each worker can rebuild it).

    `vld_size` and `split_seed` carve the validation split; `seed` draws the calibration and fine-tuning images.
    """

    supernet_path: str
    search_space: str = "ofa_mbv3"
    dataset: str = "digits"
    data: str | None = None
    vld_size: int | None = None
    split_seed: int = 0
    seed: int = 0
    width_mult: float = 1.0
    n_bn_cal: int = 500
    valid_limit: int | None = None
    n_epochs: int = 0
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval_batch_size: int = 256
    save_ckpt: bool = False
    device: str = "auto"
    num_workers: int = 0
    systolic_array: tuple[int, int] = DEFAULT_ARRAY
    robust: RobustConfig = field(default_factory=RobustConfig)
    inner: InnerConfig = field(default_factory=InnerConfig)

    def validate(self) -> SupernetEvalConfig:
        """`self` after checking the values a user may get wrong."""
        if not Path(self.supernet_path).is_file():
            raise UsageError(f"supernet weights not found: {self.supernet_path} (--supernet_path)")
        if self.n_bn_cal < 1 or self.n_epochs < 0:
            raise UsageError("need --n_bn_cal >= 1 and --n_epochs >= 0")
        self.optim.validate()
        self.robust.validate()
        self.inner.validate()
        if self.valid_limit is not None and self.valid_limit < 1:
            raise UsageError(f"the validation limit must be >= 1, got {self.valid_limit}")
        return self

    def dataset_splits(self) -> DatasetSplits:
        """The dataset, its validation split carved with `vld_size` and `split_seed`."""
        return create_dataset(self.dataset, data=self.data, vld_size=self.vld_size, seed=self.split_seed)

    def check_inputs(self, space: SearchSpace) -> None:
        """Load the dataset and the supernet, and convert the smallest network for the inner search, once.

        Any of them failing is a one-line `UsageError` now, before anything is evaluated.
        """
        n_classes = self.dataset_splits().n_classes
        if self.inner.enabled:
            smallest = space.smallest()
            network = space.build_network(smallest, n_classes, self.width_mult)
            resolution = space.resolution(smallest)
            try:
                self.inner.engine(network, (3, resolution, resolution))
            except UsageError as err:
                raise UsageError(
                    f"--inner_search {self.inner.inner_search} cannot refine networks of --search_space "
                    f"{space.name}: {err}"
                ) from None
        try:
            space.load_supernet(self.supernet_path, n_classes, self.width_mult)
        except UsageError as err:
            reason = err.reason if isinstance(err, CheckpointError) else str(err)
            raise UsageError(
                f"--supernet_path {self.supernet_path} is not a readable checkpoint of the {space.name} supernet "
                f"({n_classes} classes, --width_mult {self.width_mult}): {reason}; give the .pth written by "
                "python -m supernets.train or an OFA release"
            ) from None


@register_evaluator("supernet", help="inherit supernet weights, recalibrate batch norm, optionally fine-tune, validate")
class SupernetEvaluator(OneByOneEvaluator):
    """Evaluates subnets of one supernet, whose weights are loaded once, at construction."""

    name = "supernet"
    switches: ClassVar[Mapping[str, str]] = {"robustness": "--eval_robust", "mCE": "--ood_eval"}
    refines = True

    @classmethod
    def writes_networks(cls, search: SearchConfig) -> bool:
        """With `--inner_search`: the refined networks."""
        return search.inner.enabled

    @classmethod
    def measured(cls, search: SearchConfig) -> tuple[str, ...]:
        """`top1`, `robustness` with `--eval_robust`, `mCE` with `--ood_eval`, every cost with `--inner_search`.

        With an inner search the costs are the refined network's, known only once it is measured.
        """
        costs = COST_KEYS if search.inner.enabled else ()
        return (*cls.measures, *search.robust.measures, *costs)

    @classmethod
    def arguments(cls, search: SearchConfig) -> dict[str, object]:
        """`{"config": SupernetEvalConfig}` for a search, every input checked: `--supernet_path`, else the default."""
        space = search.space()
        path = search.supernet_path or space.default_supernet(search.dataset, search.width_mult, search.device)
        if path is None:
            raise UsageError(
                f"--supernet_path is required for --dataset {search.dataset} with --search_space "
                f"{search.search_space} (train one: {space.supernet_trainer})"
            )
        config = SupernetEvalConfig(
            supernet_path=str(path),
            search_space=search.search_space,
            dataset=search.dataset,
            data=search.data,
            seed=search.seed,
            width_mult=search.width_mult,
            n_bn_cal=search.n_bn_cal,
            n_epochs=search.n_epochs,
            optim=OptimConfig(sharpness=search.sharpness),
            save_ckpt=search.save_ckpt,
            device=search.device,
            systolic_array=search.array,
            robust=search.robust,
            inner=search.inner,
        ).validate()
        split = validation_split(
            card_split(path, search.dataset),
            dataset=search.dataset,
            seed=search.seed,
            vld_size=search.vld_size,
            owner="the supernet's",
        )
        config = replace(config, vld_size=split.vld_size, split_seed=split.seed)
        config.check_inputs(space)
        return {"config": config}

    def __init__(
        self, config: SupernetEvalConfig, device: str | None = None, splits: DatasetSplits | None = None
    ) -> None:
        """`splits`, when given (a backend's shared copy), is used instead of loading `config.dataset_splits()`."""
        self.config = config.validate()
        self.device = resolve_device(device or config.device)
        self.splits: DatasetSplits = splits if splits is not None else config.dataset_splits()
        self.space = create_search_space(config.search_space).unrestricted()
        n_classes = self.splits.n_classes
        self.supernet = self.space.load_supernet(config.supernet_path, n_classes, config.width_mult)
        self.supernet.to(self.device).eval()
        self.costs = self.space.cost_function(n_classes, config.width_mult, config.systolic_array)
        self.robustness = RobustnessMeasurement(config.robust, dataset=config.dataset, search=True)
        n_valid = min(len(self.splits.valid), config.valid_limit or len(self.splits.valid))
        log.info(
            "validating on %d %s images (split seed %d): top-1 moves in steps of %.2f points",
            n_valid,
            config.dataset,
            config.split_seed,
            100 / max(n_valid, 1),
        )

    def evaluate_one(self, arch: Arch, out_dir: Path) -> EvalResult:
        """Measure one architecture and write its files into `out_dir`."""
        start = time.perf_counter()
        try:
            arch = self.space.validate(arch)
            subnet, top1, measured = self._train_and_validate(arch)
            costs = self.costs(arch)
            refined = measured.pop("inner", None)
            if refined is not None:
                measured = {**measured, "outer": costs.as_dict(), "inner": refined}
                costs = self.space.measure(subnet, arch, self.config.systolic_array)
            result = EvalResult(
                arch=arch,
                status="ok",
                top1=top1,
                params=measured.pop("params", costs.params),
                macs=costs.macs,
                activations=costs.activations,
                extras={"peak_act": costs.peak_act, "latency": costs.latency, **measured},
                wall_time_s=time.perf_counter() - start,
            )
            if self.config.save_ckpt or refined is not None:
                self._save_checkpoint(subnet, arch, out_dir, refined)
        except Exception as err:
            log.warning("evaluation of %s failed: %s: %s", out_dir.name, type(err).__name__, err)
            result = EvalResult.failure(arch, err, time.perf_counter() - start)
        write_result(result, out_dir)
        return result

    def _save_checkpoint(self, network: nn.Module, arch: Arch, out_dir: Path, inner: dict[str, Any] | None) -> None:
        """`ckpt.pth`: the measured network's weights and what rebuilds it (a refined one's layer specs too)."""
        cfg = self.config
        split = SplitSpec(cfg.dataset, cfg.split_seed, len(self.splits.valid))  # the size, not None
        record = subnet_checkpoint(network, arch, self.splits.n_classes, cfg.width_mult, split)
        if inner is not None:
            record = {**record, "specs": module_specs(network), "inner": inner}
        atomic_torch_save(out_dir / "ckpt.pth", record)

    def _train_and_validate(self, arch: Arch) -> tuple[nn.Module, float, dict[str, Any]]:
        """The network `ckpt.pth` would hold, its validation top-1 and numbers beyond the cost function's.

        Those numbers become extras of the result, except `params`, which replaces the cost function's count, and
        `inner`, the record of the inner search that refined the network (its costs are then measured on it).
        """
        cfg = self.config
        subnet, inner = self._network(arch)
        top1 = accuracy(
            subnet,
            self.splits,
            "valid",
            self.space.resolution(arch),
            batch_size=cfg.eval_batch_size,
            device=self.device,
            limit=cfg.valid_limit,
        )
        measured = self._robustness(subnet, arch)
        return subnet, top1, measured if inner is None else {**measured, "inner": inner}

    def _robustness(self, subnet: nn.Module, arch: Arch) -> dict[str, Any]:
        """The robustness numbers asked for (`--eval_robust`, `--ood_eval`), on the validation split only."""
        cfg = self.config
        return self.robustness.measure(
            subnet,
            self.splits,
            self.space.resolution(arch),
            seed=cfg.seed,
            batch_size=cfg.eval_batch_size,
            device=self.device,
            limit=cfg.valid_limit,
        )

    def _subnet(self, arch: Arch) -> nn.Module:
        """The extracted subnet of `arch`, recalibrated, refined (`--inner_search`) and fine-tuned (`--n_epochs`)."""
        return self._network(arch)[0]

    def _network(self, arch: Arch) -> tuple[nn.Module, dict[str, Any] | None]:
        """`_subnet(arch)` and the record of the inner search that refined it (None without one)."""
        cfg = self.config
        seed = cfg.seed  # common random numbers: every architecture sees the same images in the same order
        subnet = self.space.extract(self.supernet, arch)
        self._recalibrate(subnet, arch, seed)
        inner = None
        if cfg.inner.enabled:
            hardware = SystolicArray(*cfg.systolic_array)
            refinement = refine(
                subnet, self.splits, self.space.resolution(arch), cfg.inner, optim=cfg.optim, seed=seed,
                device=self.device, hardware=hardware,
            )  # fmt: skip
            base = self.space.build_network(arch, self.splits.n_classes, cfg.width_mult)
            subnet = rebuild(base, refined_record(refinement.network)).to(self.device)
            inner = refinement.record
            self._recalibrate(subnet, arch, seed)
        if cfg.n_epochs > 0:
            self._fine_tune(subnet, arch, seed)
            self._recalibrate(subnet, arch, seed)
        return subnet, inner

    def _recalibrate(self, subnet: nn.Module, arch: Arch, seed: int) -> None:
        images = calibration_images(
            self.splits,
            self.space.resolution(arch),
            self.config.n_bn_cal,
            batch_size=self.config.eval_batch_size,
            seed=seed,
            device=self.device,
        )
        recalibrate_bn(subnet, images)

    def _fine_tune(self, subnet: nn.Module, arch: Arch, seed: int) -> None:
        """The shared fine-tuning loop on the training split, in full precision (the evaluator's numbers unchanged)."""
        cfg = self.config
        tune = FineTuneConfig(
            epochs=cfg.n_epochs, optim=cfg.optim, seed=seed, mixed_precision=False, num_workers=cfg.num_workers
        )
        fine_tune(subnet, self.splits, self.space.resolution(arch), tune, self.device)
