"""Tiny shared fixtures of the one-shot training and search tests: digits at 16 px, few-layer one-shot spaces."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from data import create_dataset
from oneshot.lut import LookupTable
from oneshot.spaces import OneShotSpec, create_oneshot_spec
from oneshot.supernet import OneShotSupernet

RESOLUTION = 16


def truncated(name: str, n_layers: int, width_mult: float = 0.25) -> OneShotSpec:
    """The first `n_layers` searchable layers of space `name` at `width_mult` (the head follows the last one)."""
    spec = create_oneshot_spec(name, width_mult=width_mult)
    return dataclasses.replace(spec, layers=spec.layers[:n_layers])


def make_supernet(spec: OneShotSpec, n_classes: int = 10, seed: int = 0) -> OneShotSupernet:
    """A freshly initialised supernet of `spec`, its weights drawn from `seed`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return OneShotSupernet(spec, n_classes)


@pytest.fixture(scope="session")
def os_digits():
    """Digits with 300 validation images and the training split cut to 160 images (a pass: 20 batches of 8)."""
    full = create_dataset("digits")
    return dataclasses.replace(full, train=full.train.subset(range(160)))


@pytest.fixture(scope="session")
def os_train_only(os_digits):
    """`os_digits` without validation and test splits: anything touching them fails."""
    return dataclasses.replace(os_digits, valid=None, test=None)


@pytest.fixture(scope="session")
def os_spec() -> OneShotSpec:
    """SPOS at width 0.25, its first 6 layers (4 choices each: 4096 paths)."""
    return truncated("spos", 6)


@pytest.fixture(scope="session")
def os_mixed_spec() -> OneShotSpec:
    """ProxylessNAS at width 0.25, its first 3 layers: 6, 7 and 7 choices (a fair group of 42 paths)."""
    return truncated("proxyless", 3)


@pytest.fixture(scope="session")
def os_lut(os_spec) -> LookupTable:
    """The lookup table of `os_spec` at 16 px, 10 classes."""
    return LookupTable.build(os_spec, n_classes=10, resolution=RESOLUTION)


@pytest.fixture
def os_supernet(os_spec) -> OneShotSupernet:
    """A fresh seeded supernet of `os_spec`."""
    return make_supernet(os_spec)


@pytest.fixture(scope="session")
def os_make_supernet():
    """`make_supernet(spec, n_classes=10, seed=0)`."""
    return make_supernet


@pytest.fixture(scope="session")
def os_truncated():
    """`truncated(name, n_layers, width_mult=0.25)`."""
    return truncated


def state_of(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every parameter and buffer."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.fixture(scope="session")
def os_state():
    """`state_of(module)`: a detached copy of every parameter and buffer (compare with `==` via `torch.equal`)."""
    return state_of


@pytest.fixture(scope="session")
def os_same():
    """`same(a, b)`: whether two `os_state` snapshots are bit-identical."""

    def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
        return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    return same
