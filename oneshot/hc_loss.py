"""The hardware-constraint loss of differentiable one-shot search, and the one place counts meet millions.

The lookup table counts MACs, FLOPs and parameters as exact integers; users give targets (`--target-hc`) in
millions. `to_count` and `to_millions` are the only conversions between the two.
"""

from __future__ import annotations

import torch
from torch import Tensor

MILLION = 1_000_000
"""Raw counts per unit of a user-facing target (`--target-hc` is in millions)."""


def to_count(millions: float | None) -> int | None:
    """A user-facing target in millions as the raw count the lookup table compares with (None stays None)."""
    return None if millions is None else round(millions * MILLION)


def to_millions(count: float) -> float:
    """A raw count (MACs, FLOPs or parameters) in millions, as users read it."""
    return count / MILLION


def hardware_constraint_loss(expected_cost: Tensor, target: float, weight: float) -> Tensor:
    """`weight · max(0, expected_cost − target) / target`: zero within the target, linear in the excess beyond it.

    `expected_cost` is the differentiable expected cost of the architecture distribution (the lookup table's
    `expected`), `target` the raw count it should not exceed (> 0).
    """
    if target <= 0:
        raise ValueError(f"the hardware target must be > 0, got {target}")
    return weight * torch.clamp(expected_cost - target, min=0) / target
