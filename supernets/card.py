"""The card beside trained supernet weights, and the validation split it records.

`python -m supernets.train` writes `<name>.json` beside `<name>.pth`: the supernet, its accuracy and `train_config`
(the training flags, flat). The supernet trained on the training images left after the validation split carved
with `train_config`'s `seed` and `vld_size`; `card_split` gives that split, so that the search, `train.py` and the
benchmarks validate on images it never saw. OFA's released weights have no card.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from data.splits import SplitSpec
from utils.io import read_json_object

log = logging.getLogger(__name__)


def card_path(weights: str | os.PathLike[str]) -> Path:
    """Where the card of the weights at `weights` is (`<name>.json` beside `<name>.pth`)."""
    return Path(weights).with_suffix(".json")


def read_card(weights: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The card of the weights at `weights`, None when there is none; an unreadable card is a `UsageError`."""
    path = card_path(weights)
    if not path.is_file():
        return None
    return read_json_object(path, "supernet card", "a supernet card")


def card_split(weights: str | os.PathLike[str], dataset: str) -> SplitSpec | None:
    """The validation split the supernet at `weights` never trained on, when its card says it trained on `dataset`.

    None, with a log line, for weights without a card or trained on another dataset: a run then carves its split
    with its own `--seed`, and it may hold images the supernet trained on.
    """
    path = card_path(weights)
    card = read_card(weights)
    trained = card.get("train_config") if card is not None else None
    if not isinstance(trained, dict) or trained.get("dataset") != dataset:
        reason = "has no card" if card is None else f"has a card {path} not of a supernet trained on {dataset}"
        log.info("%s %s: the validation split is carved with --seed and may hold images it trained on", weights, reason)
        return None
    vld_size = trained.get("vld_size")  # None: the dataset's default, whose size the card records
    record = {"dataset": dataset, "seed": trained.get("seed"), "vld_size": vld_size or card.get("valid_images")}
    return SplitSpec.from_record(record, f"its card {path}")
