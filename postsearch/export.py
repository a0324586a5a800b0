"""Writing chosen architectures out: one folder per choice, ready for `train.py`, plus the front as CSV and PNG.

A choice's folder `net-{label}_{rank}` holds `net.subnet` (the architecture, as upstream writes it), `net.stats`
(what the search measured), `ckpt.pth` when the search saved one, and `net.inherited` when a supernet is given:
`{"state_dict", "arch", "n_classes", "width_mult"}` of the subnet extracted from the supernet, ready to
fine-tune, plus `split` (the validation split the supernet never trained on, from its card) when the supernet has a
card, so that `train.py` validates on the same images. When the search measured networks its architectures do not
describe (refined by `--inner_search`, or cells DARTS found), their `ckpt.pth` (with the space's `structure_keys`)
is written as `net.inherited` instead. Each folder is
filled under a temporary name and renamed into place, so it is complete or absent.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from data import SplitSpec, create_dataset
from postsearch.selection import Front
from search.archive import Entry
from search.config import SearchConfig
from search.files import entry_row
from search.objectives import Objective, objective_matrix
from search.plots import plot_front
from search_space import SearchSpace
from supernets.card import card_split
from training.checkpoint import read_checkpoint, subnet_checkpoint
from utils.errors import UsageError
from utils.io import atomic_folder, atomic_torch_save, write_csv, write_json, write_text

__all__ = ["Choice", "Inheritance", "load_inheritance", "name_choices", "write_choice", "write_plot", "write_tables"]

log = logging.getLogger(__name__)

SUBNET, STATS, CKPT, INHERITED = "net.subnet", "net.stats", "ckpt.pth", "net.inherited"
MOST_ACCURATE = "top1"  # the label of the most accurate network's folder, as `--prefer top1` names it


@dataclass(frozen=True)
class Choice:
    """A chosen member of a front: its folder name and its index in the front."""

    name: str
    index: int


def name_choices(label: str, picks: list[int], most_accurate: int) -> list[Choice]:
    """`net-{label}_{rank}` for each pick, then `net-top1_0` for the most accurate member unless it is picked."""
    choices = [Choice(f"net-{label}_{rank}", i) for rank, i in enumerate(picks)]
    if most_accurate not in picks:
        choices.append(Choice(f"net-{MOST_ACCURATE}_0", most_accurate))
    return choices


@dataclass(frozen=True)
class Inheritance:
    """A loaded supernet to extract chosen subnets (and their weights) from, with its search space.

    `split` is the validation split the supernet never trained on (from its card; None without one).
    """

    space: SearchSpace
    supernet: nn.Module
    n_classes: int
    width_mult: float
    split: SplitSpec | None = None

    def write(self, path: Path, arch: dict[str, object]) -> Path:
        """`net.inherited` for `arch`: its extracted subnet's weights, what rebuilds it, the split to validate on."""
        subnet = self.space.extract(self.supernet, arch)
        return atomic_torch_save(path, subnet_checkpoint(subnet, arch, self.n_classes, self.width_mult, self.split))


def load_inheritance(supernet_path: str | None, search: SearchConfig) -> Inheritance | None:
    """The supernet for `net.inherited`: `supernet_path` ("none": no inherited weights), by default the search's.

    The search's supernet (its `--supernet_path`, or the embedded default's cached weights) is skipped with a log
    line when the file is not there; a `supernet_path` given but missing or unreadable is a `UsageError`. The
    number of classes is the search's `--n_classes`, else its dataset's; the width multiplier the search's; the split
    the supernet's card records, when it has one for the search's dataset. A classifier re-initialised for another
    number of classes is seeded with the search's seed.
    """
    if supernet_path == "none":
        return None
    space = search.space().unrestricted()
    if supernet_path is None:
        default = space.default_supernet(search.dataset, search.width_mult, search.device, train=False)
        path = Path(search.supernet_path) if search.supernet_path else default
        if path is None or not path.is_file():
            log.info("the search's supernet %s is not here: no net.inherited (give --supernet_path)", path or "")
            return None
    else:
        path = Path(supernet_path)
        if not path.is_file():
            raise UsageError(f"--supernet_path {path} not found")
    n_classes = search.n_classes
    if n_classes is None:
        try:
            splits = create_dataset(search.dataset, data=search.data)
        except UsageError as err:
            message = f"cannot tell the number of classes for net.inherited ({err}); or --supernet_path none"
            raise UsageError(message) from None
        n_classes = splits.n_classes
    torch.manual_seed(search.seed)
    supernet = space.load_supernet(path, n_classes, search.width_mult).eval()
    return Inheritance(space, supernet, n_classes, search.width_mult, card_split(path, search.dataset))


def holds_network(ckpt: Path, structure_keys: Sequence[str]) -> bool:
    """Whether an evaluator's `ckpt.pth` holds a network its architecture alone does not describe.

    That is, it has one of the search space's `structure_keys`: an inner search's refined layer specs, the cells
    DARTS found.
    """
    record = read_checkpoint(ckpt)
    return any(key in record for key in structure_keys)


def write_choice(
    folder: Path,
    entry: Entry,
    ckpt: Path | None,
    inheritance: Inheritance | None,
    fitted: Sequence[Objective] = (),
    structure_keys: Sequence[str] = (),
) -> Path:
    """Write one choice's folder (replacing whatever is at `folder`); see the module docstring.

    `fitted` objectives (normalised over the archive, like `top1_robust`) add their value for this network and
    the parameters they were normalised with to `net.stats`.
    """
    derived = {k: v for o in fitted for k, v in (*o.params, (o.name, o.value(entry.stats)))}
    with atomic_folder(folder) as tmp:
        write_text(tmp / SUBNET, json.dumps(entry.arch))
        write_json(tmp / STATS, {**entry.stats, **derived})
        if ckpt is not None:
            shutil.copyfile(ckpt, tmp / CKPT)
        if ckpt is not None and holds_network(ckpt, structure_keys):
            shutil.copyfile(ckpt, tmp / INHERITED)  # the measured network, not the one its architecture describes
        elif inheritance is not None:
            inheritance.write(tmp / INHERITED, entry.arch)
    return folder


def write_tables(chosen_path: Path, front_path: Path, front: Front, choices: list[Choice]) -> None:
    """The chosen networks and the whole front as CSV (a `folder` column names each member's choice, if any)."""
    names = {c.index: c.name for c in choices}
    write_csv(chosen_path, pd.DataFrame([{"folder": c.name, **entry_row(front.entries[c.index])} for c in choices]))
    rows = [{"folder": names.get(i, ""), **entry_row(e)} for i, e in enumerate(front.entries)]
    write_csv(front_path, pd.DataFrame(rows))


def write_plot(path: Path, entries: list[Entry], front: Front, choices: list[Choice], title: str) -> Path:
    """The PNG of every network considered, the front, and the choices marked and labelled by folder."""
    F_all = objective_matrix([e.stats for e in entries], front.objectives)
    F_front = front.values()
    position = {id(e): i for i, e in enumerate(entries)}
    return plot_front(
        path,
        F_all,
        F_front,
        tuple(o.label for o in front.objectives),
        F_chosen=F_front[[c.index for c in choices]],
        chosen_labels=[c.name.removeprefix("net-") for c in choices],
        chosen_at=[position[id(front.entries[c.index])] for c in choices],
        title=title,
    )
