"""Exact per-exit costs of an early-exit network, and the average MACs an exit distribution spends.

MACs are counted as everywhere in the project (`hw`): multiply-accumulates of convolutions and linear layers,
equal to `FlopCounterMode` FLOPs / 2; pooling and element-wise operations are free. Costs are per sample, in
millions once in `ExitCosts`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import TYPE_CHECKING

import torch
from torch import nn

from hw.costs import network_cost
from hw.layers import call_shapes
from hw.tracer import ModuleTracer, example_input

if TYPE_CHECKING:
    from early_exit.model import EarlyExitNet

MAC_KINDS = ("conv", "linear")
"""The layer kinds whose multiply-accumulates count as MACs."""

Shape = tuple[int, ...]


def forward_macs(module: nn.Module, in_shape: Sequence[int]) -> tuple[int, Shape]:
    """The MACs of `module` on one sample of `in_shape` (no batch dimension) and the shape of its output.

    Runs one batch-1 forward in eval mode without gradients; the module's train/eval mode is restored. A module
    returning a tuple (an exit: logits and confidence) gives the shape of its first output.
    """
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), ModuleTracer(module) as tracer:
            out = module(example_input(module, in_shape))
    finally:
        module.train(was_training)
    macs = network_cost("macs", call_shapes(tracer.calls, MAC_KINDS))
    first = out[0] if isinstance(out, tuple) else out
    return int(macs), tuple(first.shape[1:])


def n_params(module: nn.Module) -> int:
    """The number of parameter elements of `module`."""
    return sum(p.numel() for p in module.parameters())


def backbone_profile(segments: Sequence[nn.Module], final: nn.Module, resolution: int) -> tuple[list[Shape], list[int]]:
    """The feature shape at each early exit and the backbone MACs from the input up to each exit.

    `segments[i]` runs from the previous exit (or the input) to exit i; the last segment ends at the final exit,
    whose MACs include `final` (the single-exit network's classifier path). Shapes are per sample, one per early
    exit; MACs are cumulative, one per exit.
    """
    shape: Shape = (3, resolution, resolution)
    shapes: list[Shape] = []
    cumulative: list[int] = []
    total = 0
    for segment in segments:
        macs, shape = forward_macs(segment, shape)
        total += macs
        shapes.append(shape)
        cumulative.append(total)
    cumulative[-1] += forward_macs(final, shape)[0]
    return shapes[:-1], cumulative


@dataclass(frozen=True)
class ExitCosts:
    """Per-exit costs of an early-exit network, in millions, one entry per exit in depth order (final last).

    `backbone_macs[i]`: the backbone from the input up to exit i; the last entry is the whole single-exit
    network (its own classifier path included). `head_macs[i]`: exit i's head (0 for the final exit, whose
    classifier is in the backbone). `backbone_params` is cumulative like `backbone_macs`; `head_params` per head.
    """

    backbone_macs: list[float]
    head_macs: list[float]
    head_params: list[float]
    backbone_params: list[float]

    def __post_init__(self) -> None:
        lengths = {len(self.backbone_macs), len(self.head_macs), len(self.head_params), len(self.backbone_params)}
        if len(lengths) != 1 or not self.backbone_macs:
            raise ValueError(f"every cost list needs one entry per exit (at least one), got lengths {lengths}")

    @property
    def n_exits(self) -> int:
        """Number of exits, the final one included."""
        return len(self.backbone_macs)

    @property
    def exit_macs(self) -> list[float]:
        """MACs spent by an input leaving at each exit: the backbone up to it plus the heads of exits 0..i."""
        return [b + h for b, h in zip(self.backbone_macs, accumulate(self.head_macs), strict=True)]

    @property
    def params(self) -> float:
        """Parameters of the whole early-exit network: the single-exit network plus every head."""
        return self.backbone_params[-1] + sum(self.head_params)


def exit_costs(net: EarlyExitNet, resolution: int) -> ExitCosts:
    """The exact per-exit costs of `net` on `resolution` × `resolution` inputs."""
    shapes, backbone = backbone_profile(net.segments, net.final, resolution)
    heads = [forward_macs(head, shape)[0] for head, shape in zip(net.heads, shapes, strict=True)]
    params = [n_params(segment) for segment in net.segments]
    params[-1] += n_params(net.final)
    return ExitCosts(
        backbone_macs=[m / 1e6 for m in backbone],
        head_macs=[m / 1e6 for m in [*heads, 0]],
        head_params=[n_params(head) / 1e6 for head in net.heads] + [0.0],
        backbone_params=[p / 1e6 for p in accumulate(params)],
    )


def average_macs(exit_fractions: Sequence[float], costs: ExitCosts) -> float:
    """MACs per input (millions) when `exit_fractions[b]` of the inputs leave at exit b.

    An input leaving at exit b costs the backbone up to exit b plus every head it ran through, the heads of
    exits 0..b: the compute really spent, since the heads of earlier exits ran (and declined) before it left.
    The fractions must be non-negative and sum to 1.
    """
    if len(exit_fractions) != costs.n_exits:
        raise ValueError(f"{len(exit_fractions)} exit fractions for a network with {costs.n_exits} exits")
    if any(f < 0 for f in exit_fractions) or not math.isclose(sum(exit_fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"exit fractions must be non-negative and sum to 1, got {list(exit_fractions)}")
    return sum(f * m for f, m in zip(exit_fractions, costs.exit_macs, strict=True))
