"""Reading checkpoints a user hands us (`weights_only=True`, one-line failures) and writing network weights."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from utils.errors import UsageError


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, object]:
    """The dict stored at `path`, loaded with `weights_only=True`; a missing or unreadable file is a `UsageError`."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, OSError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"corrupt or unreadable checkpoint {path}: {first_line}") from None
    if not isinstance(obj, dict):
        raise UsageError(f"checkpoint {path} holds a {type(obj).__name__}, expected a dict")
    return obj


def state_dict_of(obj: dict[str, object], path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensor state dict inside a checkpoint: its `state_dict` entry, or the dict itself when it is one."""
    state = obj.get("state_dict", obj)
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UsageError(f"checkpoint {path} holds no state_dict of tensors")
    return state


def cpu_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """A detached, contiguous CPU copy of `module`'s state dict (never sharing memory with it), ready to save."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in module.state_dict().items()}


def subnet_checkpoint(
    subnet: nn.Module, arch: dict[str, object], n_classes: int, width_mult: float
) -> dict[str, object]:
    """The record of a static subnet's weights and what rebuilds it: `net.inherited` and train.py's `ckpt.pth`."""
    return {"state_dict": cpu_state_dict(subnet), "arch": arch, "n_classes": n_classes, "width_mult": width_mult}
