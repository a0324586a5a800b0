"""Reading and writing supernet weights in OFA's released format (`{"state_dict": ...}`), with clear failures."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from training.checkpoint import cpu_state_dict, read_checkpoint, state_dict_of
from utils.errors import UsageError
from utils.io import atomic_torch_save

log = logging.getLogger(__name__)

CLASSIFIER_PREFIX = "classifier."
LEGACY_BLOCK_KEY = ".mobile_inverted_conv."


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


def save_supernet_weights(supernet: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Write `supernet`'s weights in OFA's released format, atomically."""
    return atomic_torch_save(path, {"state_dict": cpu_state_dict(supernet)})


def _shapes(shapes: dict[str, torch.Size]) -> str:
    return ", ".join(f"{k}{list(v)}" for k, v in sorted(shapes.items())) or "none"
