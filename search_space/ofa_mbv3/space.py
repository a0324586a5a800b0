"""Once-for-All MobileNetV3: 5 stages of elastic depth, kernel size and expansion ratio, plus input resolution."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import nn

from hw.metrics import CostMetrics
from hw.systolic import DEFAULT_ARRAY
from search_space.base import Arch, InvalidArchitecture, SearchSpace
from search_space.ofa_mbv3.costs import CostModel, cost_model, measure
from search_space.registry import register_search_space
from supernets.checkpoint import load_supernet_weights
from supernets.ofa_mbv3 import SupernetConfig, build_supernet, extract_subnet
from utils.errors import UsageError


@register_search_space(
    "ofa_mbv3", "mobilenetv3", help="Once-for-All MobileNetV3: elastic depth, kernel, expansion, resolution"
)
class OFAMobileNetV3Space(SearchSpace):
    """OFA MobileNetV3 space with upstream's genome: per stage `[d, ks×4, e×4]` choice indices, then resolution.

    Genes of layers beyond a stage's depth are unused; the canonical form sets them to the first choice, so two
    genomes never describe the same network.
    """

    name = "ofa_mbv3"
    n_stages = 5
    max_depth = 4

    def __init__(
        self,
        lr: int = 192,
        ur: int = 256,
        rstep: int = 4,
        ks_list: Sequence[int] = (3, 5, 7),
        e_list: Sequence[int] = (3, 4, 6),
        d_list: Sequence[int] = (2, 3, 4),
    ) -> None:
        if lr > ur:
            raise UsageError(f"minimum resolution --lr {lr} is larger than maximum --ur {ur}")
        if lr < 8 or rstep < 1:
            raise UsageError(f"resolutions need --lr >= 8 and a step >= 1, got lr={lr}, rstep={rstep}")
        self.ks_list = tuple(sorted(ks_list))
        self.e_list = tuple(sorted(e_list))
        self.d_list = tuple(sorted(d_list))
        if max(self.d_list) > self.max_depth or min(self.d_list) < 1:
            raise UsageError(f"depth choices must lie in 1..{self.max_depth}, got {self.d_list}")
        self.resolutions = tuple(range(lr, ur + 1, rstep))
        upper = [len(self.d_list) - 1] + [len(self.ks_list) - 1] * 4 + [len(self.e_list) - 1] * 4
        self._xu = np.array(upper * self.n_stages + [len(self.resolutions) - 1], dtype=np.int64)
        self._xl = np.zeros_like(self._xu)

    @property
    def n_layers(self) -> int:
        """Number of elastic layers (stages × maximum depth)."""
        return self.n_stages * self.max_depth

    @property
    def xl(self) -> np.ndarray:
        """Lower bounds: all zeros."""
        return self._xl.copy()

    @property
    def xu(self) -> np.ndarray:
        """Upper bounds: the number of choices minus one per gene."""
        return self._xu.copy()

    def gene_names(self) -> list[str]:
        """Names such as `stage 2 depth`, `stage 2 layer 3 kernel`, `resolution`."""
        names = []
        for s in range(self.n_stages):
            names.append(f"stage {s} depth")
            names += [f"stage {s} layer {j} kernel" for j in range(self.max_depth)]
            names += [f"stage {s} layer {j} expand" for j in range(self.max_depth)]
        return [*names, "resolution"]

    def decode(self, x: np.ndarray | list[int]) -> Arch:
        """The canonical architecture of genome `x`."""
        genes = self.check_genome(x)
        ks: list[int] = []
        es: list[int] = []
        ds: list[int] = []
        for s in range(self.n_stages):
            g = genes[s * 9 : (s + 1) * 9]
            depth = self.d_list[g[0]]
            ds.append(depth)
            ks += [self.ks_list[g[1 + j]] if j < depth else self.ks_list[0] for j in range(self.max_depth)]
            es += [self.e_list[g[5 + j]] if j < depth else self.e_list[0] for j in range(self.max_depth)]
        return {"ks": ks, "e": es, "d": ds, "r": self.resolutions[genes[-1]]}

    def encode(self, arch: Arch) -> np.ndarray:
        """The canonical genome of `arch`."""
        arch = self.validate(arch)
        genes: list[int] = []
        for s in range(self.n_stages):
            layers = range(s * self.max_depth, (s + 1) * self.max_depth)
            genes.append(self.d_list.index(arch["d"][s]))
            genes += [self.ks_list.index(arch["ks"][i]) for i in layers]
            genes += [self.e_list.index(arch["e"][i]) for i in layers]
        genes.append(self.resolutions.index(arch["r"]))
        return np.array(genes, dtype=np.int64)

    def canonical(self, genomes: np.ndarray) -> np.ndarray:
        """Genomes with the kernel and expansion genes of layers beyond their stage's depth set to 0 (vectorised)."""
        genomes = np.array(genomes, dtype=np.int64).reshape(-1, self.n_var)
        for s in range(self.n_stages):
            base = s * 9
            depth = np.asarray(self.d_list)[genomes[:, base]]
            for j in range(self.max_depth):
                unused = depth <= j
                genomes[unused, base + 1 + j] = 0
                genomes[unused, base + 5 + j] = 0
        return genomes

    def features(self, genomes: np.ndarray) -> np.ndarray:
        """Per layer its kernel and expansion as `(choice + 1) / n_choices`, 0 when unused; depths and resolution.

        A stage's depth and the resolution map to `choice / (n_choices - 1)` (0 for a single choice), so an unused
        layer reads as the absence of one rather than as the smallest kernel and expansion.
        """
        genomes = self.canonical(genomes)
        out = np.zeros(genomes.shape, dtype=float)
        for s in range(self.n_stages):
            base = s * 9
            depth = np.asarray(self.d_list)[genomes[:, base]]
            out[:, base] = _fraction(genomes[:, base], len(self.d_list))
            for j in range(self.max_depth):
                used = depth > j
                out[:, base + 1 + j] = used * (genomes[:, base + 1 + j] + 1) / len(self.ks_list)
                out[:, base + 5 + j] = used * (genomes[:, base + 5 + j] + 1) / len(self.e_list)
        out[:, -1] = _fraction(genomes[:, -1], len(self.resolutions))
        return out

    def validate(self, arch: Arch) -> Arch:
        """`arch` with unused-layer choices normalised; raises `InvalidArchitecture` naming the bad field."""
        if not isinstance(arch, dict):
            raise InvalidArchitecture(f"architecture must be a dict with keys ks, e, d, r; got {type(arch).__name__}")
        missing = {"ks", "e", "d", "r"} - set(arch)
        extra = set(arch) - {"ks", "e", "d", "r"}
        if missing or extra:
            raise InvalidArchitecture(
                f"architecture keys must be ks, e, d, r (missing: {sorted(missing)}, unexpected: {sorted(extra)})"
            )
        ds = _choices(arch["d"], "d", self.n_stages, self.d_list)
        ks = _choices(arch["ks"], "ks", self.n_layers, self.ks_list)
        es = _choices(arch["e"], "e", self.n_layers, self.e_list)
        (r,) = _choices([arch["r"]], "r", 1, self.resolutions, field_name="r")
        for i in range(self.n_layers):
            if i % self.max_depth >= ds[i // self.max_depth]:
                ks[i], es[i] = self.ks_list[0], self.e_list[0]
        return {"ks": ks, "e": es, "d": ds, "r": r}

    def unrestricted(self) -> OFAMobileNetV3Space:
        """The same choices at every resolution from 8 to 1024 px."""
        return OFAMobileNetV3Space(lr=8, ur=1024, rstep=1, ks_list=self.ks_list, e_list=self.e_list, d_list=self.d_list)

    def supernet_config(self, n_classes: int, width_mult: float = 1.0) -> SupernetConfig:
        """The `ofa` supernet whose elastic choices are this space's."""
        return SupernetConfig(
            n_classes=n_classes, width_mult=width_mult, ks_list=self.ks_list, e_list=self.e_list, d_list=self.d_list
        )

    def cost_function(
        self, n_classes: int, width_mult: float = 1.0, array: tuple[int, int] = DEFAULT_ARRAY
    ) -> CostModel:
        """The analytic `CostModel` of the extracted subnets (shared per supernet and array)."""
        return cost_model(self.supernet_config(n_classes, width_mult), array)

    def measure(self, network: nn.Module, arch: Arch, array: tuple[int, int] = DEFAULT_ARRAY) -> CostMetrics:
        """Costs counted on a built network of `arch`, `peak_act` traced live on static ofa MobileNetV3s."""
        return measure(network, self.resolution(arch), array)

    def build_supernet(self, n_classes: int, width_mult: float = 1.0) -> nn.Module:
        """A freshly initialised `ofa` OFAMobileNetV3 with its largest subnet active."""
        return build_supernet(self.supernet_config(n_classes, width_mult))

    def load_supernet(self, path: str | os.PathLike[str], n_classes: int, width_mult: float = 1.0) -> nn.Module:
        """OFA-format weights (released or ours, legacy key names too); another classifier size is re-initialised."""
        return load_supernet_weights(self.build_supernet(n_classes, width_mult), path)

    def extract(self, supernet: nn.Module, arch: Arch) -> nn.Module:
        """The static ofa MobileNetV3 of `arch` with inherited weights."""
        return extract_subnet(supernet, arch)

    def default_supernet(self, dataset: str, width_mult: float, device: str, train: bool = True) -> Path | None:
        """The embedded default supernet (digits, width 1.0), trained and cached on first use."""
        if dataset != "digits" or width_mult != 1.0:
            return None
        from supernets.default import default_supernet, default_weights_path  # here: supernets.train imports this

        if train:
            return default_supernet(device=device)
        cached = default_weights_path()
        return cached if cached.is_file() else None

    def summary(self, arch: Arch) -> str:
        """Resolution and stage depths, e.g. `r32 d23424`."""
        return f"r{arch['r']} d{''.join(str(d) for d in arch['d'])}"

    def smallest(self) -> Arch:
        """Minimum depth, kernel, expansion and resolution."""
        return self._uniform(self.d_list[0], self.ks_list[0], self.e_list[0], self.resolutions[0])

    def largest(self) -> Arch:
        """Maximum depth, kernel, expansion and resolution."""
        return self._uniform(self.d_list[-1], self.ks_list[-1], self.e_list[-1], self.resolutions[-1])

    def _uniform(self, d: int, k: int, e: int, r: int) -> Arch:
        return self.validate({"ks": [k] * self.n_layers, "e": [e] * self.n_layers, "d": [d] * self.n_stages, "r": r})


def _fraction(choice: np.ndarray, n_choices: int) -> np.ndarray:
    """Choice indices mapped onto [0, 1]; all zeros when there is a single choice."""
    return choice / (n_choices - 1) if n_choices > 1 else np.zeros(len(choice))


def _choices(values: object, key: str, length: int, allowed: Sequence[int], field_name: str | None = None) -> list[int]:
    """`values` as a list of ints after checking its length and that each is one of `allowed`."""
    if not isinstance(values, list | tuple) or len(values) != length:
        raise InvalidArchitecture(f"architecture field {key!r} must be a list of {length} integers, got {values!r}")
    out = []
    for i, v in enumerate(values):
        label = field_name or f"{key}[{i}]"
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or int(v) not in allowed:
            raise InvalidArchitecture(f"architecture field {label} = {v!r} is not one of {tuple(allowed)}")
        out.append(int(v))
    return out
