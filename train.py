"""Fine-tune a chosen single-exit network, select it on the validation split, measure it once on the test split.

python train.py --subnet results/run/final/net-trade-off_0/net.subnet --epochs 10
python train.py --subnet .../net.subnet --epochs 10 --resume          # continue from the per-epoch checkpoint
python train.py --subnet .../net.subnet --epochs 0 --export onnx      # export the given weights (net.onnx)

The weights come from `net.inherited` next to the subnet (written by post_search.py), else from `ckpt.pth` there
(or `--init PATH`), or are freshly initialised with `--from_scratch`. Batch-norm statistics are first re-estimated
on `--n_bn_cal` training images (the inherited ones are the supernet's). After every epoch the network is measured
on the validation split and the best epoch's weights are kept (epoch 0 is the starting point); the test split is
measured once, at the end, on those weights. Written next to the subnet (or into `--save`), atomically:
`ckpt.pth`, `net.stats` (the search's numbers kept under `search`), `net.onnx` with `--export onnx`, and the
per-epoch checkpoint `net.train.pth` that `--resume` continues from.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from data import DATASETS
from deploy import list_formats
from search_space import SEARCH_SPACES
from training.config import OPTIM_HELP, NetTrainConfig
from training.trainer import NetTrainer
from utils.cli import ArgumentParser, add_dataclass_flags, dataclass_from_args, run_cli

HELP = {
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
}


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags, one per `NetTrainConfig` field (those of its `optim` included)."""
    parser = ArgumentParser(prog="train.py", description=__doc__.split("\n\n")[0])
    return add_dataclass_flags(parser, NetTrainConfig, HELP)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python train.py`."""
    cfg = dataclass_from_args(NetTrainConfig, build_parser().parse_args(argv))
    NetTrainer(cfg).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
