"""Shared fixtures: the project runs from its root, so tests import its packages directly."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from supernets.checkpoint import save_supernet_weights
from supernets.ofa_mbv3 import SupernetConfig, build_supernet

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def pytest_configure(config) -> None:
    """Under pytest-xdist each worker gets one torch thread, so two workers share two cores without thrashing."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def weights(tmp_path_factory) -> str:
    """Path of the weights of a seeded default-size OFA MobileNetV3 supernet (10 classes)."""
    torch.manual_seed(0)
    return str(save_supernet_weights(build_supernet(SupernetConfig()), tmp_path_factory.mktemp("w") / "net.pth"))
