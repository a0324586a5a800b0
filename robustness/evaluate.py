"""Measure a chosen network's robustness: its mCE on corrupted test images and, with `--eval_robust`, its flatness.

python -m robustness.evaluate --subnet results/run/final/net-trade-off_0/net.subnet
python -m robustness.evaluate --subnet .../net.subnet --dataset cifar10c --data ~/data         # Hendrycks files
python -m robustness.evaluate --subnet .../net.subnet --dataset imagenet --data ~/imagenet --ood_data ~/imagenet-c
python -m robustness.evaluate --subnet .../net.subnet --eval_robust --sigma_min 0.02 --sigma_max 0.1 --sigma_step 0.04

The weights are `--init`, else `ckpt.pth` next to the subnet (as train.py writes it), else `net.inherited`. The
corrupted test images are the Hendrycks CIFAR-10-C/CIFAR-100-C `.npy` files when the data root holds them, an
ImageNet-C-style `--ood_data` folder when given, else the 15 corruptions generated from the test split
(`robustness.corruptions`). The numbers (`mCE`, per-corruption errors, `mCE_normalised` against
`--ood_reference`, the clean `ood_top1`, and `robustness` with `--eval_robust`) are added to `net.stats` next to
the subnet, atomically; what it already holds is kept.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data import DATASETS
from robustness.config import OOD_FILES_HELP, ROBUST_HELP, RobustConfig
from robustness.flatness import FlatnessConfig
from robustness.measure import RobustnessMeasurement
from search_space import SEARCH_SPACES
from training.config import NetTrainConfig
from training.trainer import CKPT_NAME, NetTrainer
from utils.cli import ArgumentParser, add_dataclass_flags, dataclass_from_args, run_cli
from utils.errors import UsageError
from utils.io import write_json

log = logging.getLogger("robustness.evaluate")


@dataclass(frozen=True)
class EvaluateConfig:
    """The settings of one robustness evaluation of a chosen network."""

    subnet: str = ""
    init: str | None = None
    search_space: str = "ofa_mbv3"
    dataset: str = "digits"
    data: str | None = None
    vld_size: int | None = None
    eval_robust: bool = False
    flatness: FlatnessConfig = field(default_factory=FlatnessConfig)
    corruptions: str = "all"
    ood_data: str | None = None
    ood_reference: str | None = None
    eval_batch_size: int = 256
    seed: int = 0
    device: str = "auto"

    def robust(self) -> RobustConfig:
        """The measurements: mCE always, flatness with `--eval_robust`."""
        return RobustConfig(
            eval_robust=self.eval_robust, flatness=self.flatness, ood_eval=True, corruptions=self.corruptions
        )

    def train_config(self) -> NetTrainConfig:
        """The `train.py` settings that load the network and its data as they are (no epoch, no recalibration)."""
        subnet = Path(self.subnet)
        fine_tuned = subnet.parent / CKPT_NAME
        init = self.init or (str(fine_tuned) if fine_tuned.is_file() else None)
        return NetTrainConfig(
            subnet=self.subnet,
            init=init,
            search_space=self.search_space,
            dataset=self.dataset,
            data=self.data,
            vld_size=self.vld_size,
            epochs=0,
            n_bn_cal=0,
            eval_batch_size=self.eval_batch_size,
            seed=self.seed,
            device=self.device,
        )


HELP = {
    "subnet": "the chosen network's net.subnet",
    "init": f"its weights; none: {CKPT_NAME} next to the subnet (train.py's), else net.inherited",
    "search_space": f"search space of the subnet. {SEARCH_SPACES.describe()}",
    "dataset": f"dataset. {DATASETS.describe()}",
    "data": "dataset folder",
    "vld_size": "validation images carved from the training set (default: as recorded with the weights)",
    **ROBUST_HELP,
    **OOD_FILES_HELP,
    "eval_batch_size": "batch size of every measurement",
    "seed": "fixes the weight perturbations and the generated corruptions",
    "device": "auto, cpu, cuda or cuda:N",
}


def build_parser() -> argparse.ArgumentParser:
    """One flag per `EvaluateConfig` field (upstream FlatNAS's names)."""
    parser = ArgumentParser(prog="python -m robustness.evaluate", description=__doc__.split("\n\n")[0])
    return add_dataclass_flags(parser, EvaluateConfig, {k: v.replace("%", "%%") for k, v in HELP.items()})


def previous_stats(path: Path) -> dict[str, Any]:
    """What `net.stats` already holds (kept), or nothing; a file that is not a JSON object is a `UsageError`."""
    if not path.is_file():
        return {}
    try:
        stats = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"{path} is not valid JSON ({err}); move it away to write a new one") from None
    if not isinstance(stats, dict):
        raise UsageError(f"{path} does not hold a JSON object; move it away to write a new one")
    return stats


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m robustness.evaluate`."""
    cfg = dataclass_from_args(EvaluateConfig, build_parser().parse_args(argv))
    if not cfg.subnet:
        raise UsageError("--subnet is required (the net.subnet file of a chosen network)")
    if cfg.eval_batch_size < 1:
        raise UsageError("--eval_batch_size must be >= 1")
    trainer = NetTrainer(cfg.train_config())  # reads and checks the subnet, its weights and the dataset
    measurement = RobustnessMeasurement(
        cfg.robust(), dataset=cfg.dataset, data=cfg.data, ood_data=cfg.ood_data, ood_reference=cfg.ood_reference
    )
    path = trainer.paths.stats
    stats = previous_stats(path)
    measured = {
        "ood_top1": trainer.measure("test"),
        **measurement.measure(
            trainer.model,
            trainer.splits,
            trainer.resolution,
            seed=cfg.seed,
            batch_size=cfg.eval_batch_size,
            device=trainer.device,
        ),
        "ood_weights": trainer.init,
    }
    write_json(path, {**stats, **measured})
    flat = f", robustness {measured['robustness']:.3f}" if "robustness" in measured else ""
    log.info(
        "%s: test top-1 %.2f %%, mCE %.2f %% (%s)%s; wrote %s",
        cfg.subnet,
        measured["ood_top1"],
        measured["mCE"],
        measured["ood_source"],
        flat,
        path,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
