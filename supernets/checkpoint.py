"""Reading and writing supernet weights in OFA's released format (`{"state_dict": ...}`), with clear failures."""

from __future__ import annotations

import logging
import os
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from utils.errors import UsageError
from utils.io import atomic_torch_save

log = logging.getLogger(__name__)

CLASSIFIER_PREFIX = "classifier."
LEGACY_BLOCK_KEY = ".mobile_inverted_conv."


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


def load_supernet_weights(supernet: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Load OFA-format weights from `path` into `supernet`.

    Accepts OFA's released files (`ofa_mbv3_d234_e346_k357_w1.0`, keys in the current or the legacy
    `mobile_inverted_conv` naming) and the files our trainer writes. A classifier of another size is left at its
    fresh initialisation (fine-tuning to a new `n_classes`); any other mismatch is a `UsageError` naming the key.
    """
    state = {k.replace(LEGACY_BLOCK_KEY, ".conv."): v for k, v in state_dict_of(read_checkpoint(path), path).items()}
    own = supernet.state_dict()
    own_classifier = {k: v.shape for k, v in own.items() if k.startswith(CLASSIFIER_PREFIX)}
    file_classifier = {k: v.shape for k, v in state.items() if k.startswith(CLASSIFIER_PREFIX)}
    if file_classifier != own_classifier:
        log.warning(
            "classifier of %s does not match (%s vs %s): re-initialising it",
            path,
            _shapes(file_classifier),
            _shapes(own_classifier),
        )
        state = {k: v for k, v in state.items() if not k.startswith(CLASSIFIER_PREFIX)}
        state.update({k: v for k, v in own.items() if k.startswith(CLASSIFIER_PREFIX)})
    try:
        supernet.load_state_dict(state)
    except (AssertionError, ValueError, RuntimeError, KeyError) as err:
        detail = " ".join(str(err).split())[:300] or type(err).__name__
        raise UsageError(f"checkpoint {path} does not fit the supernet being built: {detail}") from None
    return supernet


def cpu_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """A detached, contiguous CPU copy of `module`'s state dict (never sharing memory with it), ready to save."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in module.state_dict().items()}


def subnet_checkpoint(
    subnet: nn.Module, arch: dict[str, object], n_classes: int, width_mult: float
) -> dict[str, object]:
    """The record of a static subnet's weights and what rebuilds it: `net.inherited` and train.py's `ckpt.pth`."""
    return {"state_dict": cpu_state_dict(subnet), "arch": arch, "n_classes": n_classes, "width_mult": width_mult}


def save_supernet_weights(supernet: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Write `supernet`'s weights in OFA's released format, atomically."""
    return atomic_torch_save(path, {"state_dict": cpu_state_dict(supernet)})


def _shapes(shapes: dict[str, torch.Size]) -> str:
    return ", ".join(f"{k}{list(v)}" for k, v in sorted(shapes.items())) or "none"
