"""The `supernet` evaluator: inherit weights, recalibrate batch norm, optionally fine-tune, validate.

Every architecture is recalibrated (and fine-tuned) on the same images in the same order, drawn from the run seed:
common random numbers, so differences between two architectures' accuracies are not differences of luck.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from data import DatasetSplits, create_dataset
from dnas.hw.systolic import DEFAULT_ARRAY
from evaluator.base import EvalResult, Evaluator, write_result
from evaluator.metrics import CostModel
from evaluator.registry import register_evaluator
from search_space.base import Arch
from search_space.ofa_mbv3 import any_resolution_space
from supernets.bn import recalibrate_bn
from supernets.checkpoint import cpu_state_dict, load_supernet_weights
from supernets.evaluate import accuracy, calibration_images
from supernets.finetune import FineTuneConfig, fine_tune
from supernets.ofa_mbv3 import SupernetConfig, build_supernet, extract_subnet
from utils.device import resolve_device
from utils.errors import UsageError
from utils.io import atomic_torch_save

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SupernetEvalConfig:
    """How the supernet evaluator measures an architecture (picklable, so each worker can rebuild it)."""

    supernet_path: str
    dataset: str = "digits"
    data: str | None = None
    vld_size: int | None = None
    seed: int = 0
    width_mult: float = 1.0
    n_bn_cal: int = 500
    valid_limit: int | None = None
    n_epochs: int = 0
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 3e-5
    label_smoothing: float = 0.1
    batch_size: int = 64
    eval_batch_size: int = 256
    save_ckpt: bool = False
    device: str = "auto"
    num_workers: int = 0
    systolic_array: tuple[int, int] = DEFAULT_ARRAY

    def validate(self) -> SupernetEvalConfig:
        """`self` after checking the values a user may get wrong."""
        if not Path(self.supernet_path).is_file():
            raise UsageError(f"supernet weights not found: {self.supernet_path} (--supernet_path)")
        if self.n_bn_cal < 1 or self.n_epochs < 0 or self.batch_size < 2 or self.lr <= 0:
            raise UsageError("need --n_bn_cal >= 1, --n_epochs >= 0, a batch size >= 2 and --lr > 0")
        if self.valid_limit is not None and self.valid_limit < 1:
            raise UsageError(f"the validation limit must be >= 1, got {self.valid_limit}")
        return self


@register_evaluator("supernet")
class SupernetEvaluator(Evaluator):
    """Evaluates subnets of one OFA MobileNetV3 supernet whose weights are loaded once, at construction."""

    name = "supernet"

    def __init__(self, config: SupernetEvalConfig, device: str | None = None) -> None:
        self.config = config.validate()
        self.device = resolve_device(device or config.device)
        self.splits: DatasetSplits = create_dataset(
            config.dataset, data=config.data, vld_size=config.vld_size, seed=config.seed
        )
        self.supernet_config = SupernetConfig(n_classes=self.splits.n_classes, width_mult=config.width_mult)
        self.supernet = load_supernet_weights(build_supernet(self.supernet_config), config.supernet_path)
        self.supernet.to(self.device).eval()
        self.cost_model = CostModel(self.supernet_config, config.systolic_array)
        self.space = any_resolution_space()

    def evaluate(self, archs: Sequence[Arch], out_dirs: Sequence[str | os.PathLike[str]]) -> list[EvalResult]:
        """Evaluate each architecture in turn; a failure is recorded and the rest of the batch goes on."""
        if len(archs) != len(out_dirs):
            raise ValueError(f"{len(archs)} architectures but {len(out_dirs)} output folders")
        return [self.evaluate_one(arch, Path(out)) for arch, out in zip(archs, out_dirs, strict=True)]

    def evaluate_one(self, arch: Arch, out_dir: Path) -> EvalResult:
        """Measure one architecture and write its files into `out_dir`."""
        start = time.perf_counter()
        try:
            arch = self.space.validate(arch)
            subnet, top1 = self._train_and_validate(arch)
            costs = self.cost_model(arch)
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
            if self.config.save_ckpt:
                atomic_torch_save(out_dir / "ckpt.pth", {"state_dict": cpu_state_dict(subnet), "arch": arch})
        except Exception as err:
            log.warning("evaluation of %s failed: %s: %s", out_dir.name, type(err).__name__, err)
            result = EvalResult.failure(arch, err, time.perf_counter() - start)
        write_result(result, out_dir)
        return result

    def _train_and_validate(self, arch: Arch) -> tuple[nn.Module, float]:
        cfg = self.config
        seed = cfg.seed  # common random numbers: every architecture sees the same images in the same order
        subnet = extract_subnet(self.supernet, arch)
        self._recalibrate(subnet, arch, seed)
        if cfg.n_epochs > 0:
            self._fine_tune(subnet, arch, seed)
            self._recalibrate(subnet, arch, seed)
        top1 = accuracy(
            subnet,
            self.splits,
            "valid",
            arch["r"],
            batch_size=cfg.eval_batch_size,
            device=self.device,
            limit=cfg.valid_limit,
        )
        return subnet, top1

    def _recalibrate(self, subnet: nn.Module, arch: Arch, seed: int) -> None:
        images = calibration_images(
            self.splits,
            arch["r"],
            self.config.n_bn_cal,
            batch_size=self.config.eval_batch_size,
            seed=seed,
            device=self.device,
        )
        recalibrate_bn(subnet, images)

    def _fine_tune(self, subnet: nn.Module, arch: Arch, seed: int) -> None:
        """The shared fine-tuning loop on the training split, in full precision (the evaluator's numbers unchanged)."""
        tune = FineTuneConfig.from_settings(self.config, epochs=self.config.n_epochs, seed=seed, mixed_precision=False)
        fine_tune(subnet, self.splits, arch["r"], tune, self.device)
