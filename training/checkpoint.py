"""Reading checkpoints a user hands us (`weights_only=True`, one-line failures) and writing network weights."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from data.splits import SplitSpec
from utils.errors import UsageError

WEIGHTS_ONLY_DETAIL = "WeightsUnpickler error:"  # what follows says why torch refused a file with weights_only


class CheckpointError(UsageError):
    """A checkpoint file that cannot be used: the message names the file, `reason` says why without naming it."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, object]:
    """The dict stored at `path`, loaded with `weights_only=True`; a missing or unreadable file is a `UsageError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}", "not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, OSError) as err:
        reason = _load_failure(err)
        raise CheckpointError(f"corrupt or unreadable checkpoint {path}: {reason}", reason) from None
    if not isinstance(obj, dict):
        reason = f"it holds a {type(obj).__name__}, expected a dict"
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, expected a dict", reason)
    return obj


def _load_failure(err: Exception) -> str:
    """What `torch.load` says is wrong with the file, in one sentence (not its advice on unsafe loading)."""
    text = str(err).strip()
    _, refused, detail = text.partition(WEIGHTS_ONLY_DETAIL)
    paragraph = (detail if refused else text).strip().split("\n\n")[0]
    sentence = " ".join(paragraph.split()).split(". ")[0].removesuffix(".")
    if refused:
        return f"weights-only loading refused it ({sentence})"
    return sentence or type(err).__name__


def state_dict_of(obj: dict[str, object], path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensor state dict inside a checkpoint: its `state_dict` entry, or the dict itself when it is one."""
    state = obj.get("state_dict", obj)
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint {path} holds no state_dict of tensors", "it holds no state_dict of tensors")
    return state


def cpu_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """A detached, contiguous CPU copy of `module`'s state dict (never sharing memory with it), ready to save."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in module.state_dict().items()}


def subnet_checkpoint(
    subnet: nn.Module, arch: dict[str, object], n_classes: int, width_mult: float, split: SplitSpec | None = None
) -> dict[str, object]:
    """The record of a static subnet's weights and what rebuilds it: `net.inherited` and train.py's `ckpt.pth`.

    With `split`, it also records (under `split`) the validation split whose images the weights never trained on.
    """
    record: dict[str, object] = {
        "state_dict": cpu_state_dict(subnet),
        "arch": arch,
        "n_classes": n_classes,
        "width_mult": width_mult,
    }
    if split is not None:
        record["split"] = split.record()
    return record


def recorded_split(record: dict[str, object], path: str | os.PathLike[str]) -> SplitSpec | None:
    """The split a `subnet_checkpoint` record holds (None in records written before it had one)."""
    return SplitSpec.from_record(record["split"], str(path)) if "split" in record else None
