"""The embedded default supernet (digits at 32 px): trained on first use, then served from `supernets/weights/`.

python -m supernets.default        # train it if it is not cached yet, then print its card
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from supernets.train import DEFAULT_WEIGHTS_DIR, TrainConfig, ensure_supernet
from utils.cli import run_cli

log = logging.getLogger(__name__)

DEFAULT_TRAIN_CONFIG = TrainConfig()


def default_weights_path(out_dir: str | Path = DEFAULT_WEIGHTS_DIR) -> Path:
    """Where the default supernet's weights are cached (whether they are there yet or not)."""
    return Path(out_dir) / f"{DEFAULT_TRAIN_CONFIG.weights_name()}.pth"


def default_supernet(out_dir: str | Path = DEFAULT_WEIGHTS_DIR, device: str = "auto") -> Path:
    """Path of the default supernet's weights, training them first when they are not cached."""
    return ensure_supernet(DEFAULT_TRAIN_CONFIG, out_dir, device)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m supernets.default`."""
    path = default_supernet()
    card = json.loads(path.with_suffix(".json").read_text())
    acc = card["accuracy"]
    log.info(
        "%s: validation top-1 smallest %.1f%%, largest %.1f%%, %d random subnets %.1f-%.1f%% (trained in %.0f s)",
        path,
        acc["smallest"],
        acc["largest"],
        acc["random"]["n"],
        acc["random"]["min"],
        acc["random"]["max"],
        card["train_time_s"],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
