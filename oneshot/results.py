"""The files of a one-shot experiment `<save>/<title>/`: the trained supernet and its card, and each search's results.

- `supernet.pth`: `{"state_dict", "oneshot": {space, scale, width_mult, n_classes}}` (weights and architecture
  parameters; loadable by `msunas.py --search_space <space> --supernet_path`), `supernet.json` its card: the
  settings that trained it (`train_config`, read by `supernets.card.card_split` for the validation split it never
  trained on), the number of validation images and the training log.
- `lut.json`: the lookup table of the searched resolution.
- `<strategy>/net.subnet` (the found architecture, as `train.py` and `python -m oneshot.train` read it),
  `<strategy>/net.stats` (its supernet-inherited validation top-1 and costs), `<strategy>/search.json` (every
  scored path, the trace, the settings) and `<strategy>/search.png`.

Every file is written atomically; a supernet is only ever read with `weights_only=True`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from oneshot.supernet import OneShotSupernet
from supernets.card import card_path, read_card
from training.checkpoint import CheckpointError, cpu_state_dict, read_checkpoint, state_dict_of
from utils.errors import UsageError
from utils.io import atomic_torch_save, write_json

log = logging.getLogger(__name__)

SUPERNET_NAME = "supernet.pth"
LUT_NAME = "lut.json"


def supernet_identity(supernet: OneShotSupernet) -> dict[str, Any]:
    """What builds `supernet` again: its space, scale, width multiplier and number of classes."""
    spec = supernet.spec
    return {"space": spec.name, "scale": spec.scale, "width_mult": spec.width_mult, "n_classes": supernet.n_classes}


def save_supernet(path: Path, supernet: OneShotSupernet, card: dict[str, Any]) -> None:
    """Write `supernet`'s weights to `path` and its `card` beside it (`<name>.json`), atomically."""
    atomic_torch_save(path, {"state_dict": cpu_state_dict(supernet), "oneshot": supernet_identity(supernet)})
    write_json(card_path(path), card)


def load_supernet(path: str | os.PathLike[str], supernet: OneShotSupernet) -> OneShotSupernet:
    """`supernet` with the weights at `path`; a missing, corrupt or mismatched checkpoint is one-line `UsageError`."""
    record = read_checkpoint(path)
    stored = record.get("oneshot")
    wanted = supernet_identity(supernet)
    if stored != wanted:
        detail = f"it holds {stored!r}" if isinstance(stored, dict) else "it is not a one-shot supernet checkpoint"
        raise UsageError(f"--supernet {path} does not fit the supernet being built ({wanted}): {detail}")
    try:
        supernet.load_state_dict(state_dict_of(record, path))
    except (RuntimeError, KeyError, ValueError) as err:
        detail = " ".join(str(err).split())[:300]
        raise CheckpointError(f"--supernet {path} does not fit the supernet being built: {detail}") from None
    return supernet


def reusable_supernet(folder: Path, record: dict[str, Any]) -> Path | None:
    """The supernet already in `folder` when it was trained with the settings `record`, else None.

    One trained with other settings is a `UsageError`: a run never overwrites an earlier run's supernet.
    """
    path = folder / SUPERNET_NAME
    if not path.is_file():
        return None
    card = read_card(path) or {}
    stored = card.get("train_config")
    if stored == record:
        log.info("%s was trained with these settings: searching it again without training", path)
        return path
    changed = sorted(k for k in record if not isinstance(stored, dict) or stored.get(k) != record[k])
    raise UsageError(
        f"{path} was trained with other settings (--{', --'.join(k.replace('_', '-') for k in changed)}); "
        "choose another --title, or pass it as --supernet to search it"
    )
