"""The embedded default supernet (digits at 32 px): trained on first use, then served from `supernets/weights/`.

python -m supernets.default                  # train it if it is not cached yet, then print its card
python -m supernets.default --device cpu     # ... training on the CPU even where there is a GPU
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from supernets.train import DEFAULT_WEIGHTS_DIR, TrainConfig, ensure_supernet
from utils.cli import ArgumentParser, run_cli
from utils.device import resolve_device
from utils.errors import UsageError
from utils.io import read_json_object

log = logging.getLogger(__name__)

DEFAULT_TRAIN_CONFIG = TrainConfig(epochs=6)
"""Digits at 32 px, 6 epochs (about three minutes on 2 CPU cores), so that `make search` fits ten minutes."""


def default_weights_path(out_dir: str | Path = DEFAULT_WEIGHTS_DIR) -> Path:
    """Where the default supernet's weights are cached (whether they are there yet or not)."""
    return Path(out_dir) / f"{DEFAULT_TRAIN_CONFIG.weights_name()}.pth"


def default_supernet(out_dir: str | Path = DEFAULT_WEIGHTS_DIR, device: str = "auto") -> Path:
    """Path of the default supernet's weights, training them first when they are not cached."""
    return ensure_supernet(DEFAULT_TRAIN_CONFIG, out_dir, device)


def build_parser() -> argparse.ArgumentParser:
    """The command line: where the weights are cached and the device to train them on when they are not."""
    parser = ArgumentParser(prog="python -m supernets.default", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        default=str(DEFAULT_WEIGHTS_DIR),
        help="folder the weights and their card are cached in (default: %(default)s)",
    )
    parser.add_argument("--device", default="auto", help="device to train on if not cached: auto, cpu, cuda or cuda:N")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m supernets.default`."""
    args = build_parser().parse_args(argv)
    resolve_device(args.device)  # a device that is not there is refused before anything is loaded or trained
    path = default_supernet(args.out, args.device)
    card_path = path.with_suffix(".json")
    card = read_json_object(card_path, "supernet card", "a card")
    try:
        acc = card["accuracy"]
        parts = [f"smallest {acc['smallest']:.1f}%", f"largest {acc['largest']:.1f}%"]
        if acc["random"]["n"]:
            parts.append(f"{acc['random']['n']} random subnets {acc['random']['min']:.1f}-{acc['random']['max']:.1f}%")
        summary = f"validation top-1 {', '.join(parts)} (trained in {card['train_time_s']:.0f} s)"
    except (KeyError, TypeError, ValueError) as err:
        raise UsageError(f"{card_path} is not a supernet card written by python -m supernets.train ({err!r})") from None
    log.info("%s: %s", path, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
