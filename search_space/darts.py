"""The `darts` and `darts1d` spaces: macro skeletons of DARTS cell networks, whose cells a DARTS search chooses.

An architecture is a skeleton `{"stages": [n0, n1, n2], "nodes": k, "channels": c, "r": r}`: `n_s` normal cells
in each of three stages with a reduction cell between two stages (so `n0 + n1 + n2 + 2` cells, the reductions at
cells `n0` and `n0 + n1 + 1`: the stage depths are the reduction positions), `k` intermediate nodes per cell (all
concatenated as its output), `c` channels in the first stage (doubled by each reduction; the stem has `3c`) and the
input resolution `r`. DARTS's own 8-cell search network is `stages [2, 2, 2]`, `nodes 4`. The cells' operations are
not part of the architecture: the `darts` evaluator searches them (DARTS) on the skeleton and records what it found.

`darts` searches 2-D cells on images; `darts1d` searches 1-D cells on the same images read row after row as
sequences of `r * r` steps (as sequential MNIST; `data` has no 1-D dataset), so both take `(B, 3, r, r)` batches.

Costs. Before its cells are searched, an architecture costs what its *reference network* costs: every node adds the
cell's two inputs through the space's most expensive primitive (`reference_op`: most parameters and MACs of the
default primitives), so the parameters and MACs are upper bounds of every network the evaluator can find on that
skeleton. The cost function measures the reference network (`measure`), as the evaluator measures the found one:
the search's costs are the evaluator's measurements, the cost function's only bounds for unevaluated skeletons.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import numpy as np
import torch
from torch import Tensor, nn

from dnas.darts import DartsSearchConfig, Genotype_CNN, NetworkCnn, read_genotype
from hw.measure import measure_counts, model_cost
from hw.metrics import CostCounts, CostMetrics
from hw.systolic import DEFAULT_ARRAY
from search_space.base import Arch, ChoiceSpace, InvalidArchitecture
from search_space.registry import register_search_space
from utils.errors import UsageError

STEM_MULTIPLIER = 3
"""The stem has this many times the first-stage channels (DARTS)."""
N_STAGES = 3
KEYS = ("stages", "nodes", "channels", "r")


def reduction_cells(arch: Arch) -> tuple[int, int]:
    """The indices of the two reduction cells: after the first and second stage's normal cells."""
    n0, n1, _ = arch["stages"]
    return n0, n0 + n1 + 1


class ImageSequence(nn.Module):
    """Reads `(B, C, H, W)` images as `(B, C, H * W, 1)` sequences, row after row: the input of 1-D cells."""

    def forward(self, x: Tensor) -> Tensor:
        """The flattened rows, as time."""
        return x.flatten(2).unsqueeze(-1)


class ReferenceCosts:
    """The costs of each skeleton's reference network for `n_classes` classes, measured once per architecture."""

    def __init__(self, space: DartsSpace, n_classes: int, array: tuple[int, int]) -> None:
        self.space = space
        self.n_classes = n_classes
        self.array = array
        self._cache: dict[str, CostMetrics] = {}

    def __call__(self, arch: Arch) -> CostMetrics:
        """The costs of `arch` in millions (an architecture outside the space is `InvalidArchitecture`)."""
        arch = self.space.validate(arch)
        key = json.dumps(arch)
        if key not in self._cache:
            with torch.random.fork_rng(devices=[]):  # building initialises weights: leave the caller's stream alone
                network = self.space.build_network(arch, self.n_classes)
            self._cache[key] = self.space.measure(network, arch, self.array)
        return self._cache[key]


@register_search_space("darts", help="DARTS skeletons (stage depths, nodes, channels, resolution); DARTS finds cells")
class DartsSpace(ChoiceSpace):
    """Genome `[n0, n1, n2, nodes, channels, r]` of choice indices; every genome is a distinct skeleton.

    The choices are class attributes (`stage_choices`: normal cells per stage, `node_choices`, `channel_choices`),
    so a variant is a subclass. `cells` is the DARTS space of the cells' primitives (`dnas.darts.SPACES`), `reader`
    what turns an image batch into the cells' input, `reference_op` the primitive of the reference network.
    """

    structure_keys: ClassVar[tuple[str, ...]] = ("genotype",)

    name = "darts"
    default_evaluator: ClassVar[str] = "darts"
    cells: ClassVar[str] = "2d"
    reader: ClassVar[type[nn.Module]] = nn.Identity
    reference_op: ClassVar[str] = "sep_conv_5x5"
    stage_choices: ClassVar[tuple[int, ...]] = (0, 1, 2)
    node_choices: ClassVar[tuple[int, ...]] = (2, 3, 4)
    channel_choices: ClassVar[tuple[int, ...]] = (8, 16, 24)

    def __init__(self, lr: int = 16, ur: int = 32, rstep: int = 8) -> None:
        self.resolutions = tuple(range(lr, ur + 1, rstep))
        if not self.resolutions or lr < 1:
            raise UsageError(f"--lr {lr} --ur {ur} --rstep {rstep} give no positive resolution")
        choices = [*[len(self.stage_choices)] * N_STAGES, len(self.node_choices), len(self.channel_choices)]
        choices.append(len(self.resolutions))
        self.set_choices(choices)

    def gene_names(self) -> list[str]:
        """The normal cells of each stage, nodes per cell, first-stage channels, resolution."""
        return [*(f"normal cells of stage {s}" for s in range(N_STAGES)), "nodes per cell", "channels", "resolution"]

    def decode(self, x: np.ndarray | list[int]) -> Arch:
        """The skeleton of genome `x`."""
        g = self.check_genome(x)
        return {
            "stages": [self.stage_choices[i] for i in g[:N_STAGES]],
            "nodes": self.node_choices[g[N_STAGES]],
            "channels": self.channel_choices[g[N_STAGES + 1]],
            "r": self.resolutions[g[N_STAGES + 2]],
        }

    def encode(self, arch: Arch) -> np.ndarray:
        """The genome of `arch`."""
        arch = self.validate(arch)
        genes = [*(self.stage_choices.index(n) for n in arch["stages"]), self.node_choices.index(arch["nodes"])]
        genes += [self.channel_choices.index(arch["channels"]), self.resolutions.index(arch["r"])]
        return np.array(genes, dtype=np.int64)

    def validate(self, arch: Arch) -> Arch:
        """`arch` checked field by field."""
        if not isinstance(arch, dict) or set(arch) != set(KEYS):
            raise InvalidArchitecture(f"a {self.name} architecture has the keys {', '.join(KEYS)}; got {arch!r:.200}")
        stages = arch["stages"]
        if not isinstance(stages, list) or len(stages) != N_STAGES:
            raise InvalidArchitecture(f"stages = {stages!r} is not a list of {N_STAGES} cell counts")
        fields = [(f"stages[{s}]", n, self.stage_choices) for s, n in enumerate(stages)]
        fields += [("nodes", arch["nodes"], self.node_choices), ("channels", arch["channels"], self.channel_choices)]
        for name, value, choices in [*fields, ("r", arch["r"], self.resolutions)]:
            if isinstance(value, bool) or value not in choices:
                raise InvalidArchitecture(f"{name} = {value!r} is not one of {choices}")
        return {
            "stages": [int(n) for n in stages],
            "nodes": int(arch["nodes"]),
            "channels": int(arch["channels"]),
            "r": int(arch["r"]),
        }

    def smallest(self) -> Arch:
        """No normal cell, the fewest nodes and channels, the lowest resolution."""
        return self.decode(self.xl)

    def largest(self) -> Arch:
        """The most normal cells, nodes and channels, the highest resolution."""
        return self.decode(self.xu)

    def unrestricted(self) -> Self:
        """The same skeletons at every resolution from 4 to 1024 px."""
        return type(self)(lr=4, ur=1024, rstep=1)

    def summary(self, arch: Arch) -> str:
        """Resolution, channels, nodes and the cell sequence (N normal, R reduction), e.g. `r16 c8 n2 NRRN`."""
        n0, n1, n2 = arch["stages"]
        return f"r{arch['r']} c{arch['channels']} n{arch['nodes']} {'N' * n0}R{'N' * n1}R{'N' * n2}"

    def measure(self, network: nn.Module, arch: Arch, array: tuple[int, int] = DEFAULT_ARRAY) -> CostMetrics:
        """Costs counted on a built `network` of `arch` (`network` or `build_network`) at its resolution.

        `params`, `macs`, `activations` and `latency` as `hw.measure.measure_counts`; `peak_act` is the largest
        layer's input plus output (`hw`'s `peak_act` cost model over convolutions, linear layers and pooling).
        """
        r = self.resolution(arch)
        counts = measure_counts(network, (3, r, r), array)
        peak = int(model_cost("peak_act", network, (3, r, r)))
        return CostCounts(counts.params, counts.macs, counts.activations, peak, counts.latency).to_metrics()

    def skeleton(self, arch: Arch, n_classes: int) -> dict[str, object]:
        """`NetworkCnn`'s arguments besides the genotype for skeleton `arch` (its cells' input: `reader`'s output)."""
        return {
            "C": arch["channels"],
            "num_classes": n_classes,
            "layers": sum(arch["stages"]) + 2,
            "in_channels": 3,
            "nodes_per_layer": arch["nodes"],
            "multiplier": arch["nodes"],
            "stem_multiplier": STEM_MULTIPLIER,
            "space": self.cells,
            "reduction_cells": reduction_cells(arch),
        }

    def search_config(self, arch: Arch, n_classes: int, **settings: object) -> DartsSearchConfig:
        """The DARTS search of `arch`'s cells over `cells`' default primitives, with `settings` (epochs, seed)."""
        net = self.skeleton(arch, n_classes)
        return DartsSearchConfig(
            nas_init_channels=net["C"],
            num_classes=n_classes,
            nas_layers=net["layers"],
            in_channels=net["in_channels"],
            nas_nodes_per_layer=net["nodes_per_layer"],
            nas_multiplier=net["multiplier"],
            nas_stem_multiplier=net["stem_multiplier"],
            nas_reduction_cells=net["reduction_cells"],
            search_space=self.cells,
            **settings,
        )

    def network(self, arch: Arch, n_classes: int, genotype: Genotype_CNN) -> nn.Sequential:
        """The network of `genotype`'s cells on skeleton `arch`, freshly initialised: `reader`, then the cells."""
        return nn.Sequential(self.reader(), NetworkCnn(genotype=genotype, **self.skeleton(arch, n_classes)))

    def reference_genotype(self, arch: Arch) -> Genotype_CNN:
        """Every node adds the cell's two inputs through `reference_op`; every node is concatenated."""
        ops = [(self.reference_op, j) for _ in range(arch["nodes"]) for j in (0, 1)]
        concat = list(range(2, 2 + arch["nodes"]))
        return Genotype_CNN(normal=ops, normal_concat=concat, reduce=ops, reduce_concat=concat)

    def build_network(self, arch: Arch, n_classes: int, width_mult: float = 1.0) -> nn.Module:
        """The reference network of `arch` (there is no width multiplier)."""
        return self.network(arch, n_classes, self.reference_genotype(arch))

    def network_for(
        self, arch: Arch, n_classes: int, width_mult: float = 1.0, structure: Mapping[str, Any] | None = None
    ) -> nn.Module:
        """The network of the record's `genotype` (the cells DARTS found) on skeleton `arch`, else the reference."""
        record = (structure or {}).get("genotype")
        genotype = self.reference_genotype(arch) if record is None else read_genotype(record)
        return self.network(arch, n_classes, genotype)

    def cost_function(
        self, n_classes: int, width_mult: float = 1.0, array: tuple[int, int] = DEFAULT_ARRAY
    ) -> ReferenceCosts:
        """The measured costs of each skeleton's reference network (bounds: the evaluator measures what it found)."""
        return ReferenceCosts(self, n_classes, tuple(array))


@register_search_space("darts1d", help="darts with 1-D cells, on images read row by row as sequences of r*r steps")
class Darts1dSpace(DartsSpace):
    """The `darts` skeletons with 1-D cells (`(k, 1)` kernels) over images read as sequences (`ImageSequence`)."""

    name = "darts1d"
    cells: ClassVar[str] = "1d"
    reader: ClassVar[type[nn.Module]] = ImageSequence
    reference_op: ClassVar[str] = "conv_bn_relu_7x1"
