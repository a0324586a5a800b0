"""The `SearchSpace` interface: one registered bundle per space.

A space bundles what the rest of the project needs to know about it: the integer genome pymoo searches
(`xl`, `xu`, `encode`, `decode`, `validate`, `sample`), the supernet its architectures are subnets of
(`build_supernet`, `load_supernet`, `extract`), the exact cost function of an architecture (`cost_function`) and the
evaluator that measures one by default (`default_evaluator`). Nothing outside a space's own module knows its fields.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
from torch import nn

from dnas.refined import apply_specs
from hw.measure import measure_counts
from hw.metrics import CostMetrics
from hw.systolic import DEFAULT_ARRAY
from utils.errors import UsageError
from utils.io import read_json_object

Arch = dict[str, Any]
"""A JSON-serialisable architecture as written to `net.subnet`, e.g. `{"ks": [..], "e": [..], "d": [..], "r": 32}`."""


class InvalidArchitecture(UsageError):
    """An architecture or genome that is not a member of the search space; the message names the bad gene."""


class CostFunction(Protocol):
    """The exact costs of an architecture (params, MACs, activations, peak activations, latency), without training."""

    def __call__(self, arch: Arch) -> CostMetrics:
        """The costs of `arch`, in millions; an architecture the function cannot count is `InvalidArchitecture`."""


class SearchSpace(ABC):
    """A discrete architecture space with a canonical integer encoding, its supernet and its cost function.

    `xl`/`xu` are inclusive integer bounds per gene (pymoo's problem bounds). `encode` and `decode` are mutual
    inverses on canonical architectures; `decode` and `validate` reject anything outside the space. Spaces take
    the resolution range as `lr`, `ur`, `rstep` keyword arguments (a space without a resolution gene ignores them).
    """

    name: str = ""
    default_evaluator: ClassVar[str] = "supernet"
    supernet_trainer: ClassVar[str] = "python -m supernets.train"
    """The command that trains this space's supernet weights (for messages)."""
    structure_keys: ClassVar[tuple[str, ...]] = ("specs",)
    """Keys of a weights record that describe its network beyond the architecture (`network_for` reads them)."""

    @property
    @abstractmethod
    def xl(self) -> np.ndarray:
        """Lower bound of every gene (all zeros for choice-index genomes)."""

    @property
    @abstractmethod
    def xu(self) -> np.ndarray:
        """Inclusive upper bound of every gene."""

    @property
    def n_var(self) -> int:
        """Number of genes."""
        return len(self.xl)

    @abstractmethod
    def gene_names(self) -> list[str]:
        """A human-readable name per gene, used in error messages."""

    @abstractmethod
    def encode(self, arch: Arch) -> np.ndarray:
        """The canonical integer genome of `arch` (validated first)."""

    @abstractmethod
    def decode(self, x: np.ndarray | list[int]) -> Arch:
        """The architecture of genome `x`; raises `InvalidArchitecture` naming the offending gene."""

    @abstractmethod
    def validate(self, arch: Arch) -> Arch:
        """The canonical form of `arch`; raises `InvalidArchitecture` naming the offending field."""

    @abstractmethod
    def smallest(self) -> Arch:
        """The architecture with the fewest operations."""

    @abstractmethod
    def largest(self) -> Arch:
        """The architecture with the most operations."""

    def resolution(self, arch: Arch) -> int:
        """The input resolution (height = width) that `arch` runs at."""
        return int(arch["r"])

    def unrestricted(self) -> SearchSpace:
        """The space of every architecture this space's supernet can run, whatever resolutions a search allows."""
        return self

    def cost_function(
        self, n_classes: int, width_mult: float = 1.0, array: tuple[int, int] = DEFAULT_ARRAY
    ) -> CostFunction:
        """Exact costs of this space's architectures for `n_classes` classes (latency on an `array` systolic array)."""
        raise UsageError(f"search space {self.name!r} has no analytic cost function")

    def measure(self, network: nn.Module, arch: Arch, array: tuple[int, int] = DEFAULT_ARRAY) -> CostMetrics:
        """Costs counted on a built `network` of `arch` (one that an inner search may have refined), at its resolution.

        `hw.measure.measure_counts` (`peak_act` NaN); a space whose family has a live-tensor tracer measures it too.
        """
        resolution = self.resolution(arch)
        return measure_counts(network, (3, resolution, resolution), array).to_metrics()

    def build_supernet(self, n_classes: int, width_mult: float = 1.0) -> nn.Module:
        """A freshly initialised supernet whose subnets are this space's architectures."""
        raise UsageError(f"search space {self.name!r} has no weight-sharing supernet")

    def load_supernet(self, path: str | os.PathLike[str], n_classes: int, width_mult: float = 1.0) -> nn.Module:
        """The supernet with the weights stored at `path`; a file that does not fit is a `UsageError`."""
        from training.checkpoint import read_checkpoint, state_dict_of  # here: training imports search_space

        supernet = self.build_supernet(n_classes, width_mult)
        try:
            supernet.load_state_dict(state_dict_of(read_checkpoint(path), path))
        except (RuntimeError, KeyError, ValueError) as err:
            detail = " ".join(str(err).split())[:300] or type(err).__name__
            raise UsageError(f"checkpoint {path} does not fit the {self.name} supernet being built: {detail}") from None
        return supernet

    def extract(self, supernet: nn.Module, arch: Arch) -> nn.Module:
        """A standalone network for `arch` with its weights copied from `supernet`."""
        raise UsageError(f"search space {self.name!r} has no weight-sharing supernet")

    def build_network(self, arch: Arch, n_classes: int, width_mult: float = 1.0) -> nn.Module:
        """The standalone network of `arch`, freshly initialised."""
        return self.extract(self.build_supernet(n_classes, width_mult), arch)

    def network_for(
        self, arch: Arch, n_classes: int, width_mult: float = 1.0, structure: Mapping[str, Any] | None = None
    ) -> nn.Module:
        """The freshly initialised network a weights record (`ckpt.pth`, `net.inherited`) holds for `arch`.

        `structure` is that record's `structure_keys` entries: with `specs`, the layers an inner search refined
        (`dnas.refined`) replace `build_network`'s.
        """
        network = self.build_network(arch, n_classes, width_mult)
        specs = (structure or {}).get("specs")
        return network if specs is None else apply_specs(network, specs)

    def default_supernet(self, dataset: str, width_mult: float, device: str, train: bool = True) -> Path | None:
        """Weights to search without `--supernet_path`, or None when there are none.

        They are trained on first use; with `train=False` only weights already cached are returned.
        """
        return None

    def summary(self, arch: Arch) -> str:
        """A short one-line description of `arch` for tables."""
        return json.dumps(arch, separators=(",", ":"))

    def canonical(self, genomes: np.ndarray) -> np.ndarray:
        """The canonical genome of every row of the integer genome matrix `genomes` (rows within the bounds)."""
        return np.array([self.encode(self.decode(x)) for x in genomes], dtype=np.int64).reshape(-1, self.n_var)

    def features(self, genomes: np.ndarray) -> np.ndarray:
        """What an accuracy predictor sees of the genomes `genomes` besides their costs: values in [0, 1] per column.

        By default the genes scaled by their bounds; a space whose genes can be unused (a layer beyond a stage's
        depth) should map those to what removes the layer, so that similar networks get similar features.
        """
        span = np.where(self.xu > self.xl, self.xu - self.xl, 1)
        return (np.asarray(genomes, dtype=float) - self.xl) / span

    def sample(self, n: int, rng: np.random.Generator) -> list[Arch]:
        """`n` distinct architectures drawn uniformly over the genome (fewer only if the space is smaller)."""
        seen: dict[tuple[int, ...], Arch] = {}
        attempts = 0
        while len(seen) < n and attempts < 100 * max(n, 1):
            x = rng.integers(self.xl, self.xu + 1)
            arch = self.decode(x)
            seen.setdefault(tuple(self.encode(arch).tolist()), arch)
            attempts += 1
        return list(seen.values())

    def check_genome(self, x: np.ndarray | list[int]) -> np.ndarray:
        """`x` as an int64 vector, after checking its length, integrality and bounds gene by gene."""
        arr = np.asarray(x)
        if arr.ndim != 1 or arr.shape[0] != self.n_var:
            raise InvalidArchitecture(f"genome must be a vector of {self.n_var} integers, got shape {arr.shape}")
        xl, xu = self.xl, self.xu
        if arr.dtype.kind in "iu" and np.all((arr >= xl) & (arr <= xu)):
            return arr.astype(np.int64)
        names = self.gene_names()
        out = np.empty(self.n_var, dtype=np.int64)
        for i, value in enumerate(arr.tolist()):
            if isinstance(value, bool) or not float(value).is_integer():
                raise InvalidArchitecture(f"gene {i} ({names[i]}) = {value!r} is not an integer")
            if not xl[i] <= int(value) <= xu[i]:
                raise InvalidArchitecture(f"gene {i} ({names[i]}) = {int(value)} is outside [{xl[i]}, {xu[i]}]")
            out[i] = int(value)
        return out


class ChoiceSpace(SearchSpace):
    """A space whose every gene is a choice index: `xl` all zeros, `xu` each gene's number of choices minus one.

    A subclass calls `set_choices` with the number of choices of every gene (in its `__init__`).
    """

    _xu: np.ndarray

    def set_choices(self, counts: Sequence[int]) -> None:
        """Set the number of choices of every gene."""
        self._xu = np.asarray(counts, dtype=np.int64) - 1

    @property
    def xl(self) -> np.ndarray:
        """All zeros."""
        return np.zeros_like(self._xu)

    @property
    def xu(self) -> np.ndarray:
        """The number of choices minus one per gene."""
        return self._xu.copy()


def read_subnet(path: str | os.PathLike[str], space: SearchSpace | None = None) -> Arch:
    """The architecture in a `net.subnet` file, canonical in `space` when one is given.

    A missing or unreadable file, text that is not a JSON object, or an architecture outside `space` is a
    `UsageError` naming the path and the reason: the one error policy for every reader of `net.subnet` files.
    """
    arch = read_json_object(path, "subnet", "an architecture")
    if space is None:
        return arch
    try:
        return space.validate(arch)
    except InvalidArchitecture as err:
        raise InvalidArchitecture(f"{path}: {err}") from None
