"""Fine-tune a chosen early-exit network, select it on the validation split, measure it once on the test split.

python -m early_exit.train --subnet results/run/final/net-trade-off_0/net.subnet --method bernulli
python -m early_exit.train --subnet .../net.subnet --method joint --train_backbone --tune_epsilon --mmax 40
python -m early_exit.train --subnet .../net.subnet --resume                  # continue from the per-epoch checkpoint
python -m early_exit.train --subnet .../net.subnet --ee_epochs 0 --warmup_ee_epochs 0 --export onnx

The early-exit counterpart of `train.py`, with its flags and files (`early_exit/trainer.py` says what differs).
The weights come from `net.inherited` next to the subnet (the backbone's, from post_search.py: the exit heads start
fresh), else from `ckpt.pth` there (or `--init PATH`; a backbone's or an early-exit network's), or are freshly
initialised with `--from_scratch`. Batch-norm statistics are re-estimated on `--n_bn_cal` training images, then
the exits train `--warmup_ee_epochs` epochs alone and `--ee_epochs` more (the backbone too with
`--train_backbone`). After every epoch the network is measured on the validation split, its thresholds chosen
there (`--tune_epsilon`, or when the space has none; else the genome's) and repaired to `--mmax`; the best epoch's
weights are kept and measured once on the test split with the thresholds chosen on validation. Written next to the
subnet (or into `--save`), atomically: `ckpt.pth`, `net.stats` (both splits' exit numbers; the search's kept under
`search`), `net.onnx` with every exit's outputs with `--export onnx`, and the checkpoint `net.train.pth`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from early_exit.config import EE_HELP, EENetTrainConfig
from early_exit.trainer import EENetTrainer, early_exit_spaces
from search_space import SEARCH_SPACES
from training.config import NET_TRAIN_HELP
from utils.cli import ArgumentParser, add_dataclass_flags, dataclass_from_args, run_cli

HELP = {
    **NET_TRAIN_HELP,
    **EE_HELP,
    "subnet": "the chosen early-exit architecture's net.subnet (JSON: ks, e, d, r and t thresholds or b exit flags)",
    "init": "weights to start from, a backbone's (its exit heads start fresh) or an early-exit network's; "
    "none: net.inherited next to the subnet, else ckpt.pth there",
    "search_space": "the subnet's early-exit search space; none: the one its exit genes name ("
    + ", ".join(f"{key}: {name}" for key, name in early_exit_spaces().items())
    + f"). {SEARCH_SPACES.describe()}",
    "mmax": "MACs budget per input, on average (millions): the thresholds chosen on validation are repaired to it, "
    "and the bernulli energy term trains towards it",
    "top1min": "least validation top-1 (percent) the threshold repair may fall to",
}


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags, one per `EENetTrainConfig` field (those of its `optim` and `ee` included)."""
    parser = ArgumentParser(prog="python -m early_exit.train", description=__doc__.split("\n\n")[0])
    return add_dataclass_flags(parser, EENetTrainConfig, HELP)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m early_exit.train`."""
    cfg = dataclass_from_args(EENetTrainConfig, build_parser().parse_args(argv))
    EENetTrainer(cfg).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
