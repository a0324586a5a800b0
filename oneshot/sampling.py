"""Supernet training strategies: what each optimiser step of supernet training trains.

A strategy is an iterator of `TrainStep`s, drawn from one `np.random.Generator`:

- `uniform` (SPOS): one path drawn uniformly per step.
- `fairstrict` (FairNAS strict fairness): steps are groups of G paths, G the least common multiple of the layers'
  choice counts; in a group every candidate of layer l is trained exactly G / n_l times (once when all layers have
  the same number of choices, as in FairNAS, SPOS and FBNet spaces). Each layer's schedule is G / n_l
  concatenated random permutations of its candidates. The trainer accumulates the gradients of the group's paths
  on one batch (as FairNAS) and steps the optimiser once.
- `differentiable`: the weights are trained through the Gumbel-softmax (or softmax) mixture of all candidates and
  each step is followed by an update of the architecture parameters (ProxylessNAS / FBNet style joint training).

Add a strategy by subclassing `SampleStrategy` and registering it with `@register_sample_strategy("name")`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from utils.registry import Registry

ArchPath = tuple[int, ...]
"""One architecture of a one-shot space: the chosen candidate index of every layer."""


@dataclass(frozen=True)
class TrainStep:
    """What one optimiser step trains: `paths` on one batch (gradients accumulated), or with none the mixture.

    `arch_update` asks for an update of the architecture parameters after the weights' step.
    """

    paths: tuple[ArchPath, ...] = ()
    arch_update: bool = False

    @property
    def mixture(self) -> bool:
        """Whether the weights are trained through the mixture of all candidates rather than single paths."""
        return not self.paths


class SampleStrategy(ABC):
    """Draws the `TrainStep`s of supernet training for a space with `n_choices[l]` candidates in layer l."""

    name: ClassVar[str]
    trains_architecture: ClassVar[bool] = False
    """Whether the steps update the architecture parameters too (they need a lookup table for a target)."""

    def __init__(self, n_choices: Sequence[int], rng: np.random.Generator) -> None:
        if not n_choices or min(n_choices) < 1:
            raise ValueError(f"every layer needs at least one candidate, got {list(n_choices)}")
        self.n_choices = tuple(int(n) for n in n_choices)
        self.rng = rng

    @property
    def paths_per_step(self) -> int:
        """How many paths (forward and backward passes) one step trains: 1 but for groups of paths."""
        return 1

    @abstractmethod
    def next_step(self) -> TrainStep:
        """The next step's work."""

    def __iter__(self) -> Iterator[TrainStep]:
        while True:
            yield self.next_step()


SAMPLE_STRATEGIES = Registry[SampleStrategy]("sample strategy")
register_sample_strategy = SAMPLE_STRATEGIES.register_class


def create_sample_strategy(name: str, n_choices: Sequence[int], seed: int | np.random.Generator = 0) -> SampleStrategy:
    """The sample strategy `name` for layers of `n_choices` candidates, drawing from `seed` (or a generator).

    An unknown name is a `UsageError` listing the choices.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return SAMPLE_STRATEGIES.create(name, n_choices=n_choices, rng=rng)


def list_sample_strategies() -> list[str]:
    """Every registered sample strategy, sorted."""
    return SAMPLE_STRATEGIES.names()


@register_sample_strategy("uniform", help="SPOS: one uniformly drawn path per step")
class UniformSampling(SampleStrategy):
    """SPOS: one path per step, each layer's candidate drawn uniformly and independently."""

    name = "uniform"

    def next_step(self) -> TrainStep:
        """One uniformly drawn path."""
        return TrainStep(paths=(tuple(int(self.rng.integers(n)) for n in self.n_choices),))


@register_sample_strategy(
    "fairstrict", help="FairNAS strict fairness: groups of paths training every candidate equally often per step"
)
class FairStrictSampling(SampleStrategy):
    """FairNAS strict fairness: a group of `group_size` paths per step, every candidate equally often per layer."""

    name = "fairstrict"

    @property
    def group_size(self) -> int:
        """G: the least common multiple of the layers' choice counts (paths per step)."""
        return math.lcm(*self.n_choices)

    @property
    def paths_per_step(self) -> int:
        """The group size G."""
        return self.group_size

    def group(self) -> list[ArchPath]:
        """The next group: layer l's column is G / n_l concatenated random permutations of its candidates."""
        g = self.group_size
        columns = [np.concatenate([self.rng.permutation(n) for _ in range(g // n)]) for n in self.n_choices]
        return [tuple(int(column[i]) for column in columns) for i in range(g)]

    def next_step(self) -> TrainStep:
        """One group of paths, trained on one batch with one optimiser step."""
        return TrainStep(paths=tuple(self.group()))


@register_sample_strategy(
    "differentiable", help="jointly train weights (Gumbel-softmax mixture) and architecture parameters"
)
class DifferentiableSampling(SampleStrategy):
    """Joint training: the weights through the candidates' mixture, then the architecture parameters, every step."""

    name = "differentiable"
    trains_architecture = True

    def next_step(self) -> TrainStep:
        """The mixture, followed by an architecture update."""
        return TrainStep(arch_update=True)


def candidate_counts(paths: Iterable[Sequence[int]], n_choices: Sequence[int]) -> list[list[int]]:
    """How often each candidate of each layer occurs in `paths`: `counts[l][c]`."""
    counts = [[0] * n for n in n_choices]
    for path in paths:
        for layer, choice in enumerate(path):
            counts[layer][choice] += 1
    return counts
