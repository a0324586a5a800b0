"""Choosing the torch device: CUDA when available and asked for, else CPU; nothing assumes a GPU."""

from __future__ import annotations

import torch

from utils.errors import UsageError


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` → CUDA if present else CPU; `cpu`; `cuda` or `cuda:N` (a `UsageError` when no GPU is present)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name} was asked for but no CUDA device is available")
        return torch.device(name)
    raise UsageError(f"unknown device {name!r}; choose auto, cpu, cuda or cuda:N")
