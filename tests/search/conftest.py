"""Fixtures shared by the search tests: a tiny, randomly initialised supernet on disk."""

from __future__ import annotations

import pytest
import torch

from supernets.checkpoint import save_supernet_weights
from supernets.ofa_mbv3 import SupernetConfig, build_supernet


@pytest.fixture(scope="session")
def weights(tmp_path_factory) -> str:
    """Path of the weights of a seeded default-size supernet (10 classes)."""
    torch.manual_seed(0)
    return str(save_supernet_weights(build_supernet(SupernetConfig()), tmp_path_factory.mktemp("w") / "net.pth"))
