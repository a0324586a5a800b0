"""Train the architecture a one-shot search found from scratch, select it on validation, measure it once on test.

python -m oneshot.train --title demo --search-strategy evolution --epochs 30
python -m oneshot.train --subnet results/oneshot/demo/evolution/net.subnet --epochs 30 --export onnx

The search's `<strategy>/search.json` says the rest: the registered search space and width, the dataset and the
validation split the search scored on (the training run selects its best epoch on the same images, never on test).
This is `train.py --from_scratch` on those settings (`training.trainer.NetTrainer`): `ckpt.pth` and `net.stats`
(the search's numbers kept under `search`) are written next to the subnet, atomically; `--resume` continues.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oneshot.strategies import SEARCH_STRATEGIES
from training.config import NET_TRAIN_HELP, NetTrainConfig, OptimConfig
from training.trainer import NetTrainer
from utils.cli import ArgumentParser, add_dataclass_flags, dataclass_from_args, run_cli
from utils.errors import UsageError
from utils.io import read_json_object


@dataclass(frozen=True)
class OneShotTrainConfig:
    """Which search result to train, and how (the rest comes from the search's record)."""

    title: str = "oneshot"
    save: str = "results/oneshot"
    search_strategy: str = "evolution"
    subnet: str | None = None
    data: str | None = None
    epochs: int = 10
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval_batch_size: int = 256
    device: str = "auto"
    num_workers: int = 0
    resume: bool = False
    export: str | None = None

    def subnet_path(self) -> Path:
        """The `net.subnet` to train: `--subnet`, else `<save>/<title>/<search-strategy>/net.subnet`."""
        if self.subnet is not None:
            return Path(self.subnet)
        if self.search_strategy not in SEARCH_STRATEGIES:
            choices = ", ".join(SEARCH_STRATEGIES.names())
            raise UsageError(f"unknown --search-strategy {self.search_strategy!r}; choose one of: {choices}")
        return Path(self.save) / self.title / self.search_strategy / "net.subnet"

    def net_train_config(self) -> NetTrainConfig:
        """`train.py`'s settings: from scratch, on the search's space, width, dataset and validation split."""
        subnet = self.subnet_path()
        record = _search_record(subnet)
        split = record["split"]
        return NetTrainConfig(
            subnet=str(subnet),
            from_scratch=True,
            search_space=record["search_space"],
            dataset=split["dataset"],
            data=self.data if self.data is not None else record["config"].get("data"),
            vld_size=split["vld_size"],
            width_mult=record["width_mult"],
            epochs=self.epochs,
            optim=self.optim,
            eval_batch_size=self.eval_batch_size,
            n_bn_cal=0,
            seed=split["seed"],
            device=self.device,
            num_workers=self.num_workers,
            resume=self.resume,
            export=self.export,
        ).validate()


def _search_record(subnet: Path) -> dict[str, Any]:
    """The `search.json` next to `subnet`, with the keys this run needs (a one-line `UsageError` otherwise)."""
    if not subnet.is_file():
        raise UsageError(f"{subnet} not found: run python -m oneshot.search first (or give --subnet)")
    path = subnet.parent / "search.json"
    record = read_json_object(path, "one-shot search record", "the record python -m oneshot.search writes")
    split = record.get("split")
    if not (
        isinstance(record.get("search_space"), str)
        and isinstance(record.get("width_mult"), int | float)
        and isinstance(record.get("config"), dict)
        and isinstance(split, dict)
        and {"dataset", "seed", "vld_size"} <= split.keys()
    ):
        raise UsageError(f"{path} is not a record written by python -m oneshot.search (search_space/split missing)")
    return record


HELP = {
    **NET_TRAIN_HELP,
    "title": "the experiment python -m oneshot.search wrote",
    "save": "folder holding the experiments",
    "search_strategy": "whose found architecture to train",
    "subnet": "a net.subnet written by python -m oneshot.search, instead of --title/--search-strategy",
    "data": "dataset folder (none: the search's)",
    "epochs": "training epochs from scratch",
}


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags, one per `OneShotTrainConfig` field, spelled as `python -m oneshot.search` spells them."""
    parser = ArgumentParser(prog="python -m oneshot.train", description=__doc__.split("\n\n")[0])
    return add_dataclass_flags(parser, OneShotTrainConfig, HELP, hyphens=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m oneshot.train`."""
    cfg = dataclass_from_args(OneShotTrainConfig, build_parser().parse_args(argv))
    NetTrainer(cfg.net_train_config()).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
