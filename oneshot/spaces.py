"""The one-shot spaces' layouts: ProxylessNAS, FBNet, SPOS and Single-path NAS, each at two scales and any width.

A space is a `OneShotSpec`: a stem, fixed blocks, a list of searchable layers (`LayerSpec`: shape, stride and the
names of its candidate blocks, `oneshot.blocks`), and a head. A path is one candidate index per searchable layer.

Scales: `imagenet` is the paper's widths and strides; `cifar` (the default) the same layer list with the stem at
stride 1 and the first stride-2 stage at stride 1, so 32 px inputs end at 4 x 4. Widths are
multiplied by `width_mult` and rounded to the nearest multiple of 8 (halves up), at least 8, at both scales
(the head too).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from oneshot.blocks import BLOCKS, SUPERKERNEL_CANDIDATES
from search_space.base import InvalidArchitecture
from utils.errors import UsageError
from utils.registry import Registry

SCALES = ("cifar", "imagenet")
"""`cifar`: 32 px inputs end at 4 x 4; `imagenet`: the paper's strides (224 px end at 7 x 7)."""

MB_CANDIDATES = tuple(f"mb_k{k}_e{e}" for k in (3, 5, 7) for e in (3, 6))
"""ProxylessNAS's six MBConv candidates."""
FB_CANDIDATES = (
    *(f"fb_k{k}_{v}" for k in (3, 5) for v in ("e1", "e1_g2", "e3", "e6")),
    "skip",
)
"""FBNet's nine candidates."""
SHUFFLE_CANDIDATES = ("shuffle_k3", "shuffle_k5", "shuffle_k7", "shuffle_xception")
"""SPOS's four choice blocks."""
SP_CANDIDATES = tuple(SUPERKERNEL_CANDIDATES)
"""Single-path NAS's four superkernel candidates."""


def scaled(channels: int, width_mult: float) -> int:
    """`channels * width_mult` rounded to the nearest multiple of 8 (halves up), at least 8."""
    return max(8, int(channels * width_mult / 8 + 0.5) * 8)


def downsampled(size: int, stride: int) -> int:
    """Height/width after a layer with an odd kernel, padding `kernel // 2` and `stride`."""
    return (size - 1) // stride + 1


@dataclass(frozen=True)
class LayerSpec:
    """One searchable (or fixed) layer: input and output channels, stride, and its candidate block names."""

    c_in: int
    c_out: int
    stride: int
    candidates: tuple[str, ...]

    @property
    def n_choices(self) -> int:
        """Number of candidates."""
        return len(self.candidates)


@dataclass(frozen=True)
class OneShotSpec:
    """A one-shot space at one scale and width: stem, fixed blocks, searchable layers and head.

    The stem is a 3x3 convolution to `stem_channels` with `stem_stride`, BN and `activation`, followed by a 3x3
    stride-2 max-pool when `stem_pool` (no registered space has one); `fixed` are non-searchable blocks after it
    (ProxylessNAS's MBConv1 3x3 16, one candidate each); `head_channels` is the final 1x1 convolution's width before
    global average pooling and the classifier (0: none).
    """

    name: str
    scale: str
    width_mult: float
    stem_channels: int
    stem_stride: int
    layers: tuple[LayerSpec, ...]
    head_channels: int
    activation: str = "relu6"
    stem_pool: bool = False
    fixed: tuple[LayerSpec, ...] = ()

    @property
    def n_layers(self) -> int:
        """Number of searchable layers (the length of a path)."""
        return len(self.layers)

    @property
    def n_choices(self) -> tuple[int, ...]:
        """Number of candidates per searchable layer."""
        return tuple(layer.n_choices for layer in self.layers)

    @property
    def features(self) -> int:
        """Channels entering the classifier."""
        return self.head_channels or (self.layers[-1].c_out if self.layers else self.stem_out)

    @property
    def stem_out(self) -> int:
        """Channels entering the first searchable layer."""
        return self.fixed[-1].c_out if self.fixed else self.stem_channels

    def n_paths(self) -> int:
        """Number of distinct paths."""
        return int(np.prod([int(n) for n in self.n_choices], dtype=object))

    def candidate(self, layer: int, index: int) -> str:
        """The name of candidate `index` of searchable layer `layer`."""
        if not isinstance(layer, int | np.integer) or not 0 <= layer < self.n_layers:
            raise InvalidArchitecture(f"{self.name}: layer {layer!r} is outside [0, {self.n_layers - 1}]")
        return self.layers[layer].candidates[self._index(layer, index)]

    def _index(self, layer: int, index: object) -> int:
        n = self.layers[layer].n_choices
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise InvalidArchitecture(f"{self.name}: layer {layer} choice {index!r} is not an integer in [0, {n - 1}]")
        if not 0 <= int(index) < n:
            raise InvalidArchitecture(f"{self.name}: layer {layer} choice {int(index)} is outside [0, {n - 1}]")
        return int(index)

    def validate_path(self, path: Sequence[int]) -> list[int]:
        """`path` as a list of ints, after checking its length and every choice (`InvalidArchitecture` naming it)."""
        if isinstance(path, str | bytes) or not isinstance(path, Sequence | np.ndarray):
            raise InvalidArchitecture(f"{self.name}: a path is a sequence of {self.n_layers} choice indices")
        values = list(np.asarray(path).tolist()) if isinstance(path, np.ndarray) else list(path)
        if len(values) != self.n_layers:
            raise InvalidArchitecture(
                f"{self.name}: a path has {self.n_layers} choices (one per layer), got {len(values)}"
            )
        return [self._index(i, v) for i, v in enumerate(values)]

    def names(self, path: Sequence[int]) -> list[str]:
        """The candidate names of `path`, layer by layer."""
        return [self.layers[i].candidates[c] for i, c in enumerate(self.validate_path(path))]

    def path_of(self, names: Sequence[str]) -> list[int]:
        """The path of the candidate names `names` (`InvalidArchitecture` naming the layer of an unknown name)."""
        if isinstance(names, str) or not isinstance(names, Sequence):
            raise InvalidArchitecture(f"{self.name}: blocks must be a list of {self.n_layers} candidate names")
        if len(names) != self.n_layers:
            raise InvalidArchitecture(
                f"{self.name}: blocks must name {self.n_layers} candidates (one per layer), got {len(names)}"
            )
        path = []
        for i, (name, layer) in enumerate(zip(names, self.layers, strict=True)):
            if not isinstance(name, str) or name not in layer.candidates:
                raise InvalidArchitecture(
                    f"{self.name}: layer {i} block {name!r} is not one of {', '.join(layer.candidates)}"
                )
            path.append(layer.candidates.index(name))
        return path

    def sample_path(self, rng: np.random.Generator) -> list[int]:
        """A path drawn uniformly, layer by layer."""
        return [int(rng.integers(n)) for n in self.n_choices]

    def stem_shape(self, resolution: int) -> tuple[int, int, int]:
        """(C, H, W) after the stem and the fixed blocks for a `resolution` x `resolution` input."""
        size = downsampled(resolution, self.stem_stride)
        if self.stem_pool:
            size = downsampled(size, 2)
        for block in self.fixed:
            size = downsampled(size, block.stride)
        return self.stem_out, size, size

    def layer_input_shapes(self, resolution: int) -> list[tuple[int, int, int]]:
        """(C, H, W) entering each searchable layer for a `resolution` x `resolution` input."""
        shapes = []
        _, size, _ = self.stem_shape(resolution)
        for layer in self.layers:
            shapes.append((layer.c_in, size, size))
            size = downsampled(size, layer.stride)
        return shapes

    def output_shape(self, resolution: int) -> tuple[int, int, int]:
        """(C, H, W) leaving the last searchable layer (entering the head)."""
        c, size, _ = self.stem_shape(resolution)
        for layer in self.layers:
            c, size = layer.c_out, downsampled(size, layer.stride)
        return c, size, size


ONESHOT_SPACES: Registry[OneShotSpec] = Registry("one-shot space")
"""One-shot space layouts: `name -> factory(scale="cifar", width_mult=1.0) -> OneShotSpec`."""


def create_oneshot_spec(name: str, scale: str = "cifar", width_mult: float = 1.0) -> OneShotSpec:
    """The layout of one-shot space `name` at `scale` and `width_mult` (bad values: a one-line `UsageError`)."""
    factory = ONESHOT_SPACES.get(name)
    if scale not in SCALES:
        raise UsageError(f"unknown one-shot scale {scale!r}; choose one of: {', '.join(SCALES)}")
    if isinstance(width_mult, bool) or not isinstance(width_mult, int | float) or not width_mult > 0:
        raise UsageError(f"width_mult must be a positive number, got {width_mult!r}")
    return factory(scale=scale, width_mult=float(width_mult))


def list_oneshot_spaces() -> list[str]:
    """Names of every registered one-shot space."""
    return ONESHOT_SPACES.names(aliases=False)


Stage = tuple[int, int, int]
"""(channels, layers, stride of the first layer) of one stage, at width 1.0 and ImageNet scale."""


def _stages(
    stages: Sequence[Stage],
    c_in: int,
    scale: str,
    width_mult: float,
    candidates: Callable[[int], tuple[str, ...]],
) -> tuple[LayerSpec, ...]:
    """The searchable layers of `stages`; `candidates(position in stage)` names each layer's candidates.

    At CIFAR scale the first stage with stride 2 gets stride 1.
    """
    layers = []
    first_s2 = next((i for i, s in enumerate(stages) if s[2] == 2), None)
    for i, (channels, depth, stride) in enumerate(stages):
        c_out = scaled(channels, width_mult)
        if scale == "cifar" and i == first_s2:
            stride = 1
        for j in range(depth):
            layers.append(LayerSpec(c_in, c_out, stride if j == 0 else 1, candidates(j)))
            c_in = c_out
    return tuple(layers)


def _check_blocks(spec: OneShotSpec) -> OneShotSpec:
    for layer in (*spec.fixed, *spec.layers):
        for name in layer.candidates:
            BLOCKS.entry(name)
    return spec


MOBILENETV2_STAGES: tuple[Stage, ...] = ((24, 4, 2), (40, 4, 2), (80, 4, 2), (96, 4, 1), (192, 4, 2), (320, 1, 1))
"""ProxylessNAS mobile's (and Single-path NAS's) searchable stages."""
FBNET_STAGES: tuple[Stage, ...] = (
    (16, 1, 1),
    (24, 4, 2),
    (32, 4, 2),
    (64, 4, 2),
    (112, 4, 1),
    (184, 4, 2),
    (352, 1, 1),
)
"""FBNet's searchable stages."""
SPOS_STAGES: tuple[Stage, ...] = ((64, 4, 2), (160, 4, 2), (320, 8, 2), (640, 4, 2))
"""SPOS ShuffleNetV2's searchable stages."""


def _layout(
    name: str,
    scale: str,
    width_mult: float,
    stem: int,
    layers: tuple[LayerSpec, ...],
    head: int,
    activation: str,
    fixed: tuple[LayerSpec, ...] = (),
) -> OneShotSpec:
    """The checked layout: the stem at stride 2 at ImageNet scale (1 at CIFAR scale), the head scaled to the width."""
    spec = OneShotSpec(
        name=name,
        scale=scale,
        width_mult=width_mult,
        stem_channels=stem,
        stem_stride=2 if scale == "imagenet" else 1,
        layers=layers,
        head_channels=scaled(head, width_mult),
        activation=activation,
        fixed=fixed,
    )
    return _check_blocks(spec)


def _mobilenetv2(name: str, scale: str, width_mult: float, choices: tuple[str, ...]) -> OneShotSpec:
    stem = scaled(32, width_mult)
    fixed = (LayerSpec(stem, scaled(16, width_mult), 1, ("mb_k3_e1",)),)
    layers = _stages(
        MOBILENETV2_STAGES, fixed[0].c_out, scale, width_mult, lambda j: choices if j == 0 else (*choices, "skip")
    )
    return _layout(name, scale, width_mult, stem, layers, 1280, "relu6", fixed=fixed)


@ONESHOT_SPACES.register(
    "proxyless", help="ProxylessNAS mobile: 21 MBConv layers (k3/5/7, e3/6; skip after a stage's first)"
)
def proxyless(scale: str = "cifar", width_mult: float = 1.0) -> OneShotSpec:
    """ProxylessNAS mobile: stem 32, fixed MBConv1 3x3 16, 21 MBConv layers (k 3/5/7, e 3/6, skip), head 1280."""
    return _mobilenetv2("proxyless", scale, width_mult, MB_CANDIDATES)


@ONESHOT_SPACES.register("fbnet", help="FBNet: 22 layers of its 9 candidates (k3/5, e1/e1-group-2/e3/e6, skip)")
def fbnet(scale: str = "cifar", width_mult: float = 1.0) -> OneShotSpec:
    """FBNet: stem 16, 22 layers of its 9 candidates in every layer, head 1504 (ReLU)."""
    stem = scaled(16, width_mult)
    layers = _stages(FBNET_STAGES, stem, scale, width_mult, lambda _: FB_CANDIDATES)
    return _layout("fbnet", scale, width_mult, stem, layers, 1504, "relu")


@ONESHOT_SPACES.register("spos", help="SPOS ShuffleNetV2: 20 layers of 4 choice blocks (k3/5/7, xception)")
def spos(scale: str = "cifar", width_mult: float = 1.0) -> OneShotSpec:
    """SPOS ShuffleNetV2: stem 16, 20 layers of 4 shuffle blocks, head 1024 (ReLU).

    As in the SPOS paper's Table 1 there is no max-pool after the stem (224 px end at 7 x 7); `stem_pool` exists for
    ShuffleNetV2-style variants.
    """
    stem = scaled(16, width_mult)
    layers = _stages(SPOS_STAGES, stem, scale, width_mult, lambda _: SHUFFLE_CANDIDATES)
    for i, layer in enumerate(layers):
        if layer.c_in != layer.c_out and layer.c_out <= layer.c_in:
            raise UsageError(
                f"spos at width_mult {width_mult}: layer {i} would have {layer.c_out} channels, not more than its "
                f"{layer.c_in} input channels; use a larger width_mult"
            )
        if layer.c_in == layer.c_out and layer.stride == 2:
            raise UsageError(
                f"spos at width_mult {width_mult}: layer {i} would not widen its {layer.c_in} channels at stride 2; "
                "use a larger width_mult"
            )
    return _layout("spos", scale, width_mult, stem, layers, 1024, "relu")


@ONESHOT_SPACES.register(
    "singlepath", help="Single-path NAS: ProxylessNAS backbone of 5x5 e6 superkernels (k3/5, e3/6)"
)
def singlepath(scale: str = "cifar", width_mult: float = 1.0) -> OneShotSpec:
    """Single-path NAS: ProxylessNAS's backbone, each layer a superkernel (k 3/5, e 3/6), skip but in first layers."""
    return _mobilenetv2("singlepath", scale, width_mult, SP_CANDIDATES)
