"""`seed_everything`: one integer seeds every random source and makes torch's kernels deterministic."""

import os
import random

import numpy as np
import pytest
import torch

from utils.seed import CUBLAS_WORKSPACE, seed_everything


@pytest.fixture
def torch_flags(monkeypatch):
    """Restores torch's process-global determinism flags after the test (the environment via monkeypatch)."""
    saved = (
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, True
    torch.use_deterministic_algorithms(False)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[:2]
    torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])


def draws():
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_seeding_sets_the_determinism_flags(torch_flags):
    seed_everything(3)
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE == ":4096:8"


def test_a_workspace_setting_of_the_user_is_kept(torch_flags, monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    seed_everything(3)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def test_same_seed_same_draws_other_seed_differs(torch_flags):
    rng = seed_everything(7)
    first, generated = draws(), rng.random()
    rng = seed_everything(7)
    assert draws() == first and rng.random() == generated
    seed_everything(8)
    assert draws() != first
