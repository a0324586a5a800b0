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

from training.config import NET_TRAIN_HELP, NetTrainConfig
from training.trainer import NetTrainer
from utils.cli import ArgumentParser, add_dataclass_flags, dataclass_from_args, run_cli


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags, one per `NetTrainConfig` field (those of its `optim` included)."""
    parser = ArgumentParser(prog="train.py", description=__doc__.split("\n\n")[0])
    return add_dataclass_flags(parser, NetTrainConfig, NET_TRAIN_HELP)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python train.py`."""
    cfg = dataclass_from_args(NetTrainConfig, build_parser().parse_args(argv))
    NetTrainer(cfg).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
