"""Early-exit OFA MobileNetV3 spaces: the `ofa_mbv3` genome plus one gene per exit position.

An exit may follow each of the first four elastic stages (`EXIT_POSITIONS`); exit `k` (1-based, as in the gene
names and summaries) sits after stage `k - 1` (0-based, as in `exit_stages` and the `stage s` gene names). The fifth
stage ends in the network's own final classifier, which is always an exit.

- `eemobilenetv3` (EDANAS): a confidence threshold per position, from `THRESHOLDS`; `1.0` means no exit there.
  Architectures are `{"ks", "e", "d", "r", "t": [4 thresholds]}`.
- `cbnmobilenetv3` (NACHOS): an on/off flag per position, at least one on. Architectures are
  `{"ks", "e", "d", "r", "b": [4 flags]}`.

The backbone is an `OFAMobileNetV3Space` held as `space.ofa`: its 46 genes (the resolution gene included, even with
a single resolution) come first and the exit genes after them, so they are read from the same place whatever the
resolution range. In both spaces a higher exit gene means fewer early exits (a higher threshold; exit off), its
highest value no exit at all: `xl` decodes to the smallest backbone with every exit at its cheapest setting (each
input may leave at the first exit) and `xu` to the largest backbone with as few early exits as the space allows.
Costs and extracted subnets are the backbone's (the single-exit network); the exit heads are the `ee` evaluator's.
"""

from __future__ import annotations

import copy
import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from torch import nn

from hw.metrics import CostMetrics
from hw.systolic import DEFAULT_ARRAY
from search_space.base import Arch, InvalidArchitecture, SearchSpace
from search_space.ofa_mbv3 import CostModel, OFAMobileNetV3Space
from search_space.registry import register_search_space

EXIT_POSITIONS = OFAMobileNetV3Space.n_stages - 1
"""Positions an early exit may take: after each elastic stage but the last (4)."""

THRESHOLDS = (0.1, 0.2, 1.0)
"""The `eemobilenetv3` threshold grid, one choice per gene value; the last, 1.0, means no exit."""

BACKBONE_KEYS = ("ks", "e", "d", "r")
"""The fields of an architecture that describe its `ofa_mbv3` backbone."""


class EarlyExitSpace(SearchSpace):
    """The `ofa_mbv3` genome followed by one gene per exit position, stored in the architecture field `key`.

    Gene value `g` of an exit position stands for `exit_choices[g]` in the architecture; the last choice means no
    exit at that position. Takes `OFAMobileNetV3Space`'s keyword arguments (`lr`, `ur`, `rstep`, choice lists) and
    keeps that backbone space as `ofa`.
    """

    default_evaluator: ClassVar[str] = "ee"
    key: ClassVar[str]
    exit_choices: ClassVar[tuple[float, ...] | tuple[int, ...]]
    value_kind: ClassVar[type[numbers.Number]]
    gene_label: ClassVar[str]

    def __init__(self, **kwargs: Any) -> None:
        self.ofa = OFAMobileNetV3Space(**kwargs)

    @property
    def xl(self) -> np.ndarray:
        """Lower bounds: all zeros."""
        return np.r_[self.ofa.xl, np.zeros(EXIT_POSITIONS, dtype=np.int64)]

    @property
    def xu(self) -> np.ndarray:
        """Upper bounds: the backbone's, then the number of exit choices minus one per position."""
        return np.r_[self.ofa.xu, np.full(EXIT_POSITIONS, len(self.exit_choices) - 1, dtype=np.int64)]

    def gene_names(self) -> list[str]:
        """The backbone's gene names, then e.g. `exit 1 threshold` or `exit 1 off`."""
        return [*self.ofa.gene_names(), *(f"exit {k} {self.gene_label}" for k in range(1, EXIT_POSITIONS + 1))]

    def decode(self, x: np.ndarray | list[int]) -> Arch:
        """The canonical architecture of genome `x` (repaired where its exit genes are not a valid choice)."""
        genes = self.canonical(self.check_genome(x)[None])[0]
        arch = self.ofa.decode(genes[: self.ofa.n_var])
        arch[self.key] = [self.exit_choices[g] for g in genes[self.ofa.n_var :]]
        return arch

    def encode(self, arch: Arch) -> np.ndarray:
        """The canonical genome of `arch`."""
        arch = self.validate(arch)
        exits = [self.exit_choices.index(v) for v in arch[self.key]]
        return np.r_[self.ofa.encode({k: arch[k] for k in BACKBONE_KEYS}), exits].astype(np.int64)

    def canonical(self, genomes: np.ndarray) -> np.ndarray:
        """Every row with its backbone genes canonical as in `ofa_mbv3` (vectorised)."""
        genomes = np.array(genomes, dtype=np.int64).reshape(-1, self.n_var)
        genomes[:, : self.ofa.n_var] = self.ofa.canonical(genomes[:, : self.ofa.n_var])
        return genomes

    def features(self, genomes: np.ndarray) -> np.ndarray:
        """The backbone's features, then each exit gene as its value (a threshold, or 1 for an exit on): in [0, 1]."""
        genomes = self.canonical(genomes)
        values = np.asarray(self.exit_choices, dtype=float)[genomes[:, self.ofa.n_var :]]
        return np.hstack([self.ofa.features(genomes[:, : self.ofa.n_var]), values])

    def validate(self, arch: Arch) -> Arch:
        """`arch` in canonical form; raises `InvalidArchitecture` naming the bad field."""
        keys = (*BACKBONE_KEYS, self.key)
        listed = ", ".join(keys)
        if not isinstance(arch, dict):
            raise InvalidArchitecture(f"architecture must be a dict with keys {listed}; got {type(arch).__name__}")
        missing, extra = set(keys) - set(arch), set(arch) - set(keys)
        if missing or extra:
            raise InvalidArchitecture(
                f"architecture keys must be {listed} (missing: {sorted(missing)}, unexpected: {sorted(extra)})"
            )
        out = self.ofa.validate({k: arch[k] for k in BACKBONE_KEYS})
        out[self.key] = self._exit_values(arch[self.key])
        return out

    def _exit_values(self, values: object) -> list[Any]:
        """`values` as exit choices after checking the length and that each is one of them."""
        allowed = tuple(sorted(self.exit_choices))
        if not isinstance(values, list | tuple) or len(values) != EXIT_POSITIONS:
            raise InvalidArchitecture(
                f"architecture field {self.key!r} must be a list of {EXIT_POSITIONS} values from {allowed}, "
                f"got {values!r}"
            )
        out = []
        for i, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, self.value_kind) or v not in self.exit_choices:
                raise InvalidArchitecture(f"architecture field {self.key}[{i}] = {v!r} is not one of {allowed}")
            out.append(self.exit_choices[self.exit_choices.index(v)])
        return out

    def exit_stages(self, arch: Arch) -> list[int]:
        """The stage indices (0-3, ascending) followed by an exit that is on."""
        no_exit = self.exit_choices[-1]
        return [s for s, v in enumerate(self.validate(arch)[self.key]) if v != no_exit]

    def thresholds(self, arch: Arch) -> list[float] | None:
        """The thresholds of the exits that are on, in order; None for a space without thresholds."""
        return None

    def backbone(self, arch: Arch) -> Arch:
        """The plain `ofa_mbv3` architecture of `arch` (`ks`, `e`, `d`, `r` only), canonical."""
        arch = self.validate(arch)
        return {k: arch[k] for k in BACKBONE_KEYS}

    def smallest(self) -> Arch:
        """The smallest backbone with every exit at its cheapest setting (the architecture of `xl`)."""
        return self.decode(self.xl)

    def largest(self) -> Arch:
        """The largest backbone with as few early exits as the space allows (the architecture of `xu`)."""
        return self.decode(self.xu)

    def summary(self, arch: Arch) -> str:
        """The backbone's summary and the exits that are on, e.g. `r32 d23424 exits 1,3` (with `@threshold`)."""
        stages, thresholds = self.exit_stages(arch), self.thresholds(arch)
        labels = [str(s + 1) for s in stages]
        if thresholds is not None:
            labels = [f"{label}@{t:g}" for label, t in zip(labels, thresholds, strict=True)]
        return f"{self.ofa.summary(arch)} exits {','.join(labels) or 'none'}"

    def unrestricted(self) -> Self:
        """The same exit genes over the backbone's unrestricted space (every resolution from 8 to 1024 px)."""
        wider = copy.copy(self)
        wider.ofa = self.ofa.unrestricted()
        return wider

    def cost_function(
        self, n_classes: int, width_mult: float = 1.0, array: tuple[int, int] = DEFAULT_ARRAY
    ) -> BackboneCosts:
        """The exact costs of the backbone, the whole single-exit network, as `ofa_mbv3` counts them."""
        return BackboneCosts(self, self.ofa.cost_function(n_classes, width_mult, array))

    def build_supernet(self, n_classes: int, width_mult: float = 1.0) -> nn.Module:
        """The `ofa_mbv3` supernet (exit heads are added by the `ee` evaluator)."""
        return self.ofa.build_supernet(n_classes, width_mult)

    def load_supernet(self, path: str | os.PathLike[str], n_classes: int, width_mult: float = 1.0) -> nn.Module:
        """The `ofa_mbv3` supernet with the weights at `path`."""
        return self.ofa.load_supernet(path, n_classes, width_mult)

    def extract(self, supernet: nn.Module, arch: Arch) -> nn.Module:
        """The backbone subnet of `arch` with inherited weights."""
        return self.ofa.extract(supernet, self.backbone(arch))

    def default_supernet(self, dataset: str, width_mult: float, device: str, train: bool = True) -> Path | None:
        """The `ofa_mbv3` default supernet."""
        return self.ofa.default_supernet(dataset, width_mult, device, train)


@dataclass(frozen=True)
class BackboneCosts:
    """The exact costs of an early-exit architecture's backbone (the single-exit network, without exit heads)."""

    space: EarlyExitSpace
    model: CostModel

    def __call__(self, arch: Arch) -> CostMetrics:
        """The costs of `space.backbone(arch)`, in millions."""
        return self.model(self.space.backbone(arch))


@register_search_space("eemobilenetv3", help="EDANAS: OFA MobileNetV3 with a confidence threshold per early exit")
class EEMobileNetV3Space(EarlyExitSpace):
    """OFA MobileNetV3 plus a threshold gene per exit position over `THRESHOLDS` (1.0: no exit there).

    Every threshold gene is meaningful (each position follows a stage that always exists), so none is normalised;
    thresholds all 1.0 is the plain single-exit backbone.
    """

    name = "eemobilenetv3"
    key = "t"
    exit_choices = THRESHOLDS
    value_kind = numbers.Real
    gene_label = "threshold"

    def thresholds(self, arch: Arch) -> list[float]:
        """The thresholds of the exits that are on (below 1.0), in order."""
        return [t for t in self.validate(arch)["t"] if t != THRESHOLDS[-1]]


@register_search_space("cbnmobilenetv3", help="NACHOS: OFA MobileNetV3 with early exits switched on or off")
class CBNMobileNetV3Space(EarlyExitSpace):
    """OFA MobileNetV3 plus an exit gene per position: 0 turns the exit on (`b` = 1), 1 turns it off (`b` = 0).

    The gene is the flag inverted so that, as everywhere in these genomes, a higher gene never adds an early exit
    and `xl` decodes to the smallest architecture. At least one exit must be on: a genome with every exit gene off
    is repaired by `decode` and `canonical` to the nearest valid one, with only the last exit (after stage 3) on.
    Of the four genomes one gene away, that is the network closest to the single-exit backbone the genome asks for:
    its only early exit is the deepest, the one that lets the fewest inputs leave early. A hand-written architecture
    with every exit off is invalid.
    """

    name = "cbnmobilenetv3"
    key = "b"
    exit_choices = (1, 0)
    value_kind = numbers.Integral
    gene_label = "off"
    repair_stage: ClassVar[int] = EXIT_POSITIONS - 1

    def canonical(self, genomes: np.ndarray) -> np.ndarray:
        """Canonical backbone genes, and the last exit turned on in every row with all exits off (vectorised)."""
        genomes = super().canonical(genomes)
        exits = genomes[:, self.ofa.n_var :]
        all_off = (exits == self.exit_choices.index(0)).all(axis=1)
        genomes[all_off, self.ofa.n_var + self.repair_stage] = self.exit_choices.index(1)
        return genomes

    def validate(self, arch: Arch) -> Arch:
        """`arch` in canonical form; every exit off is `InvalidArchitecture` too."""
        arch = super().validate(arch)
        if not any(arch["b"]):
            raise InvalidArchitecture(
                f"architecture field 'b' = {arch['b']!r} turns every exit off; at least one of the "
                f"{EXIT_POSITIONS} exits must be on (1)"
            )
        return arch
