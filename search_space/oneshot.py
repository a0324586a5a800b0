"""The one-shot spaces (`oneshot/`) as outer search spaces: ProxylessNAS, FBNet, SPOS and Single-path NAS.

`proxyless`, `fbnet`, `spos`, `singlepath` are the CIFAR-scale layouts, `<name>_imagenet` the papers' ImageNet-scale
ones (`oneshot.spaces`). An architecture is `{"blocks": [candidate name per searchable layer], "r": resolution}`;
the genome is one choice index per layer plus a resolution index over `range(lr, ur + 1, rstep)`. Every genome is a
distinct network, so the encoding is canonical as it is.

The supernet is `oneshot.supernet.OneShotSupernet` (a plain `state_dict`); `extract` copies a path's weights out of
it. Costs come from the exact lookup tables (`oneshot.lut`): params, MACs, activations and latency equal
`hw.measure.measure_counts` of the extracted network; `peak_act` is `hw`'s `peak_act` cost model (the largest
layer's input plus output elements), as `measure` counts it on a built network.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Self

import numpy as np
from torch import nn

from hw.measure import measure_counts, model_cost
from hw.metrics import CostCounts, CostMetrics
from hw.systolic import DEFAULT_ARRAY
from oneshot.lut import PEAK_METRIC, LookupTable, lookup_table
from oneshot.spaces import ONESHOT_SPACES, SCALES, OneShotSpec, create_oneshot_spec
from oneshot.supernet import OneShotSupernet, build_network
from search_space.base import Arch, ChoiceSpace, InvalidArchitecture
from search_space.registry import register_search_space
from utils.errors import UsageError

KEYS = ("blocks", "r")
RANKING_CLASSES = 10
"""Classes of the lookup table that ranks candidates for `smallest`/`largest` (the classifier is the same for all)."""


class OneShotCosts:
    """Exact costs of a one-shot space's architectures from its lookup tables, one table per resolution (cached)."""

    def __init__(self, space: OneShotSearchSpace, spec: OneShotSpec, n_classes: int, array: tuple[int, int]) -> None:
        self.space = space
        self.spec = spec
        self.n_classes = n_classes
        self.array = array

    def table(self, resolution: int) -> LookupTable:
        """The lookup table at `resolution` (built once per spec, classes, resolution and array)."""
        return lookup_table(self.spec, self.n_classes, int(resolution), self.array)

    def counts(self, arch: Arch) -> CostCounts:
        """Integer counts of `arch`: params, MACs, activations, `peak_act` (hw's cost model) and latency."""
        arch = self.space.validate(arch)
        lut = self.table(arch["r"])
        path = self.spec.path_of(arch["blocks"])
        c = lut.counts(path)
        return CostCounts(c.params, c.macs, c.activations, lut.cost(path, PEAK_METRIC), c.latency)

    def __call__(self, arch: Arch) -> CostMetrics:
        """The costs of `arch` in millions (an architecture outside the space is `InvalidArchitecture`)."""
        return self.counts(arch).to_metrics()


class OneShotSearchSpace(ChoiceSpace):
    """Genome: one choice index per searchable layer of one-shot space `space` at `scale`, then the resolution.

    Subclasses, one per registered name, set `name`, `space` (a name in `oneshot.ONESHOT_SPACES`) and `scale`.
    """

    supernet_trainer: ClassVar[str] = "python -m oneshot.search, then --supernet_path <save>/<title>/supernet.pth"
    space: ClassVar[str] = ""
    scale: ClassVar[str] = "cifar"

    def __init__(self, lr: int = 32, ur: int = 32, rstep: int = 4) -> None:
        if lr > ur:
            raise UsageError(f"minimum resolution --lr {lr} is larger than maximum --ur {ur}")
        if lr < 4 or rstep < 1:
            raise UsageError(f"resolutions need --lr >= 4 and a step >= 1, got lr={lr}, rstep={rstep}")
        self.resolutions = tuple(range(lr, ur + 1, rstep))
        self.rstep = rstep
        self.spec = create_oneshot_spec(self.space, self.scale)
        self.set_choices([*self.spec.n_choices, len(self.resolutions)])

    def gene_names(self) -> list[str]:
        """The block of each searchable layer (its shape at width 1.0), then the resolution."""
        names = [
            f"layer {i} block ({layer.c_in}->{layer.c_out}, stride {layer.stride})"
            for i, layer in enumerate(self.spec.layers)
        ]
        return [*names, "resolution"]

    def decode(self, x: np.ndarray | list[int]) -> Arch:
        """The architecture of genome `x`."""
        g = self.check_genome(x)
        return {"blocks": self.spec.names(g[:-1].tolist()), "r": self.resolutions[int(g[-1])]}

    def encode(self, arch: Arch) -> np.ndarray:
        """The genome of `arch`."""
        arch = self.validate(arch)
        return np.array([*self.spec.path_of(arch["blocks"]), self.resolutions.index(arch["r"])], dtype=np.int64)

    def validate(self, arch: Arch) -> Arch:
        """`arch` checked field by field (`InvalidArchitecture` naming the layer or the resolution)."""
        if not isinstance(arch, dict) or set(arch) != set(KEYS):
            raise InvalidArchitecture(f"a {self.name} architecture has the keys {', '.join(KEYS)}; got {arch!r:.200}")
        path = self.spec.path_of(arch["blocks"])
        r = arch["r"]
        if isinstance(r, bool) or not isinstance(r, int | np.integer) or int(r) not in self.resolutions:
            res = self.resolutions
            raise InvalidArchitecture(f"r = {r!r} is not one of {res[0]}..{res[-1]} in steps of {self.rstep}")
        return {"blocks": self.spec.names(path), "r": int(r)}

    def path(self, arch: Arch) -> list[int]:
        """The choice index per layer of `arch`."""
        return self.spec.path_of(self.validate(arch)["blocks"])

    def _ranking(self, resolution: int) -> LookupTable:
        return lookup_table(self.spec, RANKING_CLASSES, resolution, DEFAULT_ARRAY)

    def smallest(self) -> Arch:
        """The fewest MACs (lookup table at width 1.0) at the lowest resolution."""
        r = self.resolutions[0]
        return {"blocks": self.spec.names(self._ranking(r).smallest("macs")[0]), "r": r}

    def largest(self) -> Arch:
        """The most MACs (lookup table at width 1.0) at the highest resolution."""
        r = self.resolutions[-1]
        return {"blocks": self.spec.names(self._ranking(r).largest("macs")[0]), "r": r}

    def unrestricted(self) -> Self:
        """The same blocks at every resolution from 4 to 1024 px."""
        return type(self)(lr=4, ur=1024, rstep=1)

    def summary(self, arch: Arch) -> str:
        """Resolution and the choice index of every layer, e.g. `r32 031...`."""
        return f"r{arch['r']} {''.join(str(c) for c in self.path(arch))}"

    def oneshot_spec(self, width_mult: float = 1.0) -> OneShotSpec:
        """The layout at `width_mult`."""
        return create_oneshot_spec(self.space, self.scale, width_mult)

    def cost_function(
        self, n_classes: int, width_mult: float = 1.0, array: tuple[int, int] = DEFAULT_ARRAY
    ) -> OneShotCosts:
        """Exact costs from the lookup tables of the layout at `width_mult`, one per resolution."""
        return OneShotCosts(self, self.oneshot_spec(width_mult), n_classes, tuple(int(a) for a in array))

    def measure(self, network: nn.Module, arch: Arch, array: tuple[int, int] = DEFAULT_ARRAY) -> CostMetrics:
        """Costs counted on a built `network` of `arch`: `measure_counts` plus `hw`'s `peak_act` cost model."""
        r = self.resolution(arch)
        counts = measure_counts(network, (3, r, r), array)
        peak = int(model_cost(PEAK_METRIC, network, (3, r, r)))
        return CostCounts(counts.params, counts.macs, counts.activations, peak, counts.latency).to_metrics()

    def build_supernet(self, n_classes: int, width_mult: float = 1.0) -> OneShotSupernet:
        """A freshly initialised `OneShotSupernet` of the layout at `width_mult`."""
        return OneShotSupernet(self.oneshot_spec(width_mult), n_classes)

    def extract(self, supernet: nn.Module, arch: Arch) -> nn.Module:
        """The standalone network of `arch` with the supernet's weights copied."""
        if not isinstance(supernet, OneShotSupernet) or (supernet.spec.name, supernet.spec.scale) != (
            self.space,
            self.scale,
        ):
            raise UsageError(f"the supernet given is not a {self.name} one-shot supernet")
        return supernet.extract(self.path(arch))

    def build_network(self, arch: Arch, n_classes: int, width_mult: float = 1.0) -> nn.Module:
        """The standalone network of `arch`, freshly initialised (without building the supernet)."""
        return build_network(self.oneshot_spec(width_mult), self.path(arch), n_classes)

    def default_supernet(self, dataset: str, width_mult: float, device: str, train: bool = True) -> Path | None:
        """None: no default weights yet (give `--supernet_path`)."""
        return None


def registered_name(space: str, scale: str = "cifar") -> str:
    """The search-space name of one-shot space `space` at `scale`: `space` at CIFAR scale, else `space_scale`."""
    if space not in ONESHOT_SPACES:
        ONESHOT_SPACES.entry(space)  # the UsageError listing the one-shot spaces
    if scale not in SCALES:
        raise UsageError(f"unknown one-shot scale {scale!r}; choose one of: {', '.join(SCALES)}")
    return space if scale == "cifar" else f"{space}_{scale}"


def _register() -> None:
    """One `OneShotSearchSpace` subclass per one-shot space and scale: `<space>` (CIFAR), `<space>_imagenet`."""
    for space in ONESHOT_SPACES.names(aliases=False):
        for scale in SCALES:
            key = registered_name(space, scale)
            cls_name = f"OneShot{space.capitalize()}{scale.capitalize()}Space"
            doc = f"`{space}` one-shot space at {scale} scale: {ONESHOT_SPACES.entry(space).help}."
            attrs = {"name": key, "space": space, "scale": scale, "__doc__": doc, "__module__": __name__}
            cls = type(cls_name, (OneShotSearchSpace,), {**attrs, "__qualname__": cls_name})
            size = "32 px end at 4x4" if scale == "cifar" else "224 px end at 7x7"
            help_text = f"one-shot {ONESHOT_SPACES.entry(space).help}; {scale} scale ({size})"
            register_search_space(key, help=help_text)(cls)
            globals()[cls_name] = cls


_register()
