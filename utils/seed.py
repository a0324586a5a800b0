"""Seeding of every random source from one integer, and the settings that make torch's kernels deterministic.

On CPU, seeding is enough for "same seed, same result". On CUDA it is not: cuDNN picks convolution algorithms by
benchmarking (`benchmark`) and may pick non-deterministic ones, some kernels accumulate with atomics, and cuBLAS
needs a fixed workspace (`CUBLAS_WORKSPACE_CONFIG`, read once, when CUDA initialises). `deterministic_torch` sets
all of these; they cost some GPU speed. An operation without a deterministic kernel only warns (`warn_only`).
"""

from __future__ import annotations

import logging
import os
import random

import numpy as np
import torch

log = logging.getLogger(__name__)

CUBLAS_WORKSPACE = ":4096:8"
"""The cuBLAS workspace setting that makes its results reproducible (CUDA's documentation)."""


def deterministic_torch() -> None:
    """Make torch choose deterministic kernels (process-global); call it before CUDA is first used."""
    if "CUBLAS_WORKSPACE_CONFIG" not in os.environ:
        if torch.cuda.is_initialized():
            log.warning("CUDA was initialised before CUBLAS_WORKSPACE_CONFIG was set: cuBLAS may not be deterministic")
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy's legacy state and torch, make torch deterministic; return a NumPy generator of `seed`."""
    deterministic_torch()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)
