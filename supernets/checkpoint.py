"""Reading and writing supernet weights in OFA's released format (`{"state_dict": ...}`), with clear failures."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from training.checkpoint import CheckpointError, cpu_state_dict, read_checkpoint, state_dict_of
from utils.io import atomic_torch_save

log = logging.getLogger(__name__)

CLASSIFIER_PREFIX = "classifier."
LEGACY_BLOCK_KEY = ".mobile_inverted_conv."


def load_supernet_weights(supernet: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Load OFA-format weights from `path` into `supernet`.

    Accepts OFA's released files (`ofa_mbv3_d234_e346_k357_w1.0`, keys in the current or the legacy
    `mobile_inverted_conv` naming) and the files our trainer writes. A classifier of another size is left at its
    fresh initialisation (fine-tuning to a new `n_classes`); any other mismatch is a `CheckpointError` naming the key.
    """
    state = {k.replace(LEGACY_BLOCK_KEY, ".conv."): v for k, v in state_dict_of(read_checkpoint(path), path).items()}
    own = supernet.state_dict()
    own_classifier = {k: v.shape for k, v in own.items() if k.startswith(CLASSIFIER_PREFIX)}
    file_classifier = {k: v.shape for k, v in state.items() if k.startswith(CLASSIFIER_PREFIX)}
    if file_classifier != own_classifier:
        state = {k: v for k, v in state.items() if not k.startswith(CLASSIFIER_PREFIX)}
        state.update({k: v for k, v in own.items() if k.startswith(CLASSIFIER_PREFIX)})
    try:
        supernet.load_state_dict(state)
    except (AssertionError, ValueError, RuntimeError, KeyError) as err:
        detail = _misfit(err)
        reason = f"it does not fit the supernet being built: {detail}"
        raise CheckpointError(f"checkpoint {path} does not fit the supernet being built: {detail}", reason) from None
    if file_classifier != own_classifier:  # said once the rest fits, so that a file that does not is one line
        log.warning(
            "classifier of %s does not match (%s vs %s): re-initialising it",
            path,
            _shapes(file_classifier),
            _shapes(own_classifier),
        )
    return supernet


def _misfit(err: Exception) -> str:
    """The first problem `load_state_dict` names (and how many more there are), in one line."""
    if not isinstance(err, RuntimeError):  # ofa's loader: a key it has no place for
        return f"the supernet has no tensor {err.args[0] if err.args else '?'}"
    problems = [" ".join(line.split()).removesuffix(".") for line in str(err).splitlines()[1:] if line.strip()]
    if not problems:
        return " ".join(str(err).split()) or type(err).__name__
    return problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")


def save_supernet_weights(supernet: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Write `supernet`'s weights in OFA's released format, atomically."""
    return atomic_torch_save(path, {"state_dict": cpu_state_dict(supernet)})


def _shapes(shapes: dict[str, torch.Size]) -> str:
    return ", ".join(f"{k}{list(v)}" for k, v in sorted(shapes.items())) or "none"
