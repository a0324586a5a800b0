"""Cost metrics of OFA MobileNetV3 subnets: parameters, MACs, CNAS activations and peak live activations.

Every number is of an architecture at its own resolution `arch["r"]`, batch 1, for the static subnet that
`supernets.ofa_mbv3.extract_subnet` builds (the `ofa` counters under-count on the supernet), in millions:

`params`
    Parameter elements of the subnet: convolution and linear weights, SE and classifier biases, batch-norm
    weight and bias (running statistics are buffers, not parameters).
`macs`
    Multiply-accumulates of the convolutions and linear layers, i.e. `FlopCounterMode` FLOPs / 2: biases,
    batch norm, activations, pooling and the SE rescaling are not counted; the 1×1 SE convolutions and the
    classifier are.
`activations`
    Upstream CNAS's definition, kept so numbers compare with its papers: the sum of the output elements of every
    leaf `Conv2d`, `BatchNorm2d`, `Linear`, `Flatten`, `AvgPool2d` and `MaxPool2d` module of a forward pass. An
    OFA subnet has no `Flatten` or pooling modules of those types (its global pooling is `MyGlobalAvgPool2d`
    and its flatten a `view`), so only convolutions, batch norms and the classifier count, the SE squeeze and
    excite convolutions with their 1×1 outputs included.
`peak_act`
    The peak number of tensor elements that must be alive at once when the network runs operation by operation
    (what bounds the SRAM of a TinyML deployment). The operations, in execution order, are:

    * `first_conv`, `final_expand_layer`, `feature_mix_layer`: one `ConvLayer` each (conv + BN + activation);
    * per MBConv block: `conv.inverted_bottleneck` (1×1 conv + BN + act; absent when the expansion is 1),
      `conv.depth_conv` (depthwise conv + BN + act), `conv.depth_conv.se` (squeeze-excite: its output is the
      rescaled tensor, as large as its input; the pooled C-element squeeze vectors are not counted),
      `conv.point_linear` (1×1 conv + BN) and, for blocks with an identity shortcut, `add`
      (the block output plus the held shortcut into a new tensor);
    * `global_avg_pool` and `classifier` (the flatten before it is a view and costs nothing).

    An operation keeps alive its input, its output and, inside a block with an identity shortcut, the block
    input held for the residual addition, each distinct tensor counted once (so the block's first operation,
    whose input *is* the held tensor, counts it once; the addition counts three tensors). The network input
    image is the input of `first_conv`. `peak_act` is the maximum over the operations; `CostModel.layers`
    lists every operation's live elements.

`latency`
    Cycles of one image on an `s1 × s2` systolic array (`hw.systolic`, default 16 × 16): the sum over the
    convolutions and linear layers of `ceil(k1·k2·c / s1) · ceil(f / s2) · h · w` per group (the SE convolutions
    and the classifier included; batch norm, activations, pooling and additions cost nothing), in millions.

`CostModel` computes all five analytically from closed-form per-layer formulas, cached per (block
configuration, input size) so that thousands of calls take about a second. `measure` measures them on any
built network (`FlopCounterMode`, a parameter sum, forward hooks, and `OFAMobileNetV3LiveTracer` for
`peak_act`); the tests check that both agree exactly.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import NamedTuple

from torch import nn

from hw.costs import layer_activations, layer_macs, layer_params
from hw.layers import LayerShape
from hw.measure import measure_counts as measure_network
from hw.metrics import CostCounts, CostMetrics
from hw.systolic import DEFAULT_ARRAY, SystolicArray
from search_space.base import Arch, InvalidArchitecture
from search_space.ofa_mbv3.tracer import OFAMobileNetV3LiveTracer, is_static_ofa_mbv3
from supernets.ofa_mbv3 import SupernetConfig

with warnings.catch_warnings():  # ofa imports deprecated torchvision/torch helpers
    warnings.simplefilter("ignore")
    from ofa.utils import MyNetwork, SEModule, make_divisible

# The fixed macro-architecture of `ofa`'s OFAMobileNetV3 (see its __init__): widths before the width multiplier
# of the first conv, the fixed first block and the five elastic stages, then the final expand and feature mix.
_BASE_WIDTHS = (16, 16, 24, 40, 80, 112, 160)
_BASE_FINAL_EXPAND = 960
_BASE_LAST = 1280
_STAGE_STRIDES = (2, 2, 2, 1, 2)
_STAGE_SE = (False, True, False, True, True)
_N_STAGES = 5
_DIVISOR = MyNetwork.CHANNEL_DIVISIBLE
_SE_REDUCTION = SEModule.REDUCTION
_STEM_KERNEL, _STEM_STRIDE = 3, 2
_BLOCK0_KERNEL = 3


class LayerCost(NamedTuple):
    """One operation of the sequential execution, named after the subnet module that runs it.

    `output` is the element count of the operation's output tensor, `activations` its CNAS contribution and
    `live` the elements alive while it runs (input, output and any held residual tensor), `runtime` its
    systolic-array cycles.
    """

    name: str
    params: int
    macs: int
    activations: int
    output: int
    live: int
    runtime: int = 0


class _Part(NamedTuple):
    """A cached group of operations (the stem, one block or the head) with its totals and output size."""

    rows: tuple[LayerCost, ...]
    params: int
    macs: int
    activations: int
    peak: int
    runtime: int
    size: int


def _conv_size(size: int, kernel: int, stride: int) -> int:
    """Output height/width of an ofa convolution: padding `get_same_padding(k) = k // 2`, no dilation."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def _part(rows: list[LayerCost], size: int) -> _Part:
    return _Part(
        rows=tuple(rows),
        params=sum(r.params for r in rows),
        macs=sum(r.macs for r in rows),
        activations=sum(r.activations for r in rows),
        peak=max(r.live for r in rows),
        runtime=sum(r.runtime for r in rows),
        size=size,
    )


Array = tuple[int, int]


def _layer(
    in_c: int, out_c: int, kernel: int, groups: int, in_size: int, out_size: int, bias: bool, array: Array
) -> tuple[int, int, int, int]:
    """(params, macs, output elements, runtime) of one conv / linear layer, by `hw`'s registered per-layer costs."""
    layer = LayerShape(in_c // groups, out_c, kernel * kernel, out_size * out_size, in_size * in_size, groups, bias)
    runtime = SystolicArray(*array).layer_latency(layer)
    return layer_params(layer), layer_macs(layer), layer_activations(layer), runtime


def _conv_bn(
    in_c: int, out_c: int, kernel: int, groups: int, in_size: int, out_size: int, bn: bool, array: Array
) -> tuple[int, int, int, int, int]:
    """(params, macs, activations, output elements, runtime) of a bias-free conv, optionally followed by BN."""
    params, macs, out, runtime = _layer(in_c, out_c, kernel, groups, in_size, out_size, False, array)
    return params + (2 * out_c if bn else 0), macs, out * (2 if bn else 1), out, runtime


def _mbconv_rows(
    in_c: int,
    out_c: int,
    kernel: int,
    stride: int,
    mid: int,
    expand: bool,
    use_se: bool,
    residual: bool,
    size: int,
    array: Array,
) -> tuple[list[LayerCost], int]:
    """The operations of one `ResidualBlock(MBConvLayer)` (names relative to the block) and its output size."""
    rows: list[LayerCost] = []
    held = in_c * size * size if residual else 0
    current = in_c * size * size

    def op(name: str, params: int, macs: int, activations: int, out: int, runtime: int) -> None:
        nonlocal current
        extra = held if rows else 0  # the first operation's input is the held block input itself
        rows.append(LayerCost(name, params, macs, activations, out, current + out + extra, runtime))
        current = out

    if expand:
        op("conv.inverted_bottleneck", *_conv_bn(in_c, mid, 1, 1, size, size, True, array))
    out_size = _conv_size(size, kernel, stride)
    op("conv.depth_conv", *_conv_bn(mid, mid, kernel, mid, size, out_size, True, array))
    if use_se:  # squeeze and excite: 1×1 convolutions with bias on the pooled C-vector
        se_mid = make_divisible(mid // _SE_REDUCTION, _DIVISOR)
        reduce, expand = _layer(mid, se_mid, 1, 1, 1, 1, True, array), _layer(se_mid, mid, 1, 1, 1, 1, True, array)
        params, macs, acts, runtime = (a + b for a, b in zip(reduce, expand, strict=True))
        op("conv.depth_conv.se", params, macs, acts, mid * out_size * out_size, runtime)
    op("conv.point_linear", *_conv_bn(mid, out_c, 1, 1, out_size, out_size, True, array))
    if residual:
        out = out_c * out_size * out_size
        rows.append(LayerCost("add", 0, 0, 0, out, 2 * out + held))
    return rows, out_size


@lru_cache(maxsize=1 << 16)
def _dynamic_block(
    in_c: int, out_c: int, kernel: int, expand_ratio: int, stride: int, use_se: bool, size: int, array: Array
) -> _Part:
    """An elastic block as `DynamicMBConvLayer.get_active_subnet` builds it, at input size `size`."""
    mid = make_divisible(round(in_c * expand_ratio), _DIVISOR)
    residual = stride == 1 and in_c == out_c
    rows, out_size = _mbconv_rows(in_c, out_c, kernel, stride, mid, expand_ratio != 1, use_se, residual, size, array)
    return _part(rows, out_size)


@lru_cache(maxsize=1 << 12)
def _stem(stem_c: int, block0_c: int, resolution: int, array: Array) -> _Part:
    """`first_conv` (3×3, stride 2, h-swish) and the fixed first block (MBConv, expand 1, 3×3, ReLU, no SE)."""
    size = _conv_size(resolution, _STEM_KERNEL, _STEM_STRIDE)
    params, macs, acts, out, runtime = _conv_bn(3, stem_c, _STEM_KERNEL, 1, resolution, size, True, array)
    rows = [LayerCost("first_conv", params, macs, acts, out, 3 * resolution * resolution + out, runtime)]
    residual = stem_c == block0_c
    block_rows, size = _mbconv_rows(stem_c, block0_c, _BLOCK0_KERNEL, 1, stem_c, False, False, residual, size, array)
    rows += [row._replace(name=f"blocks.0.{row.name}") for row in block_rows]
    return _part(rows, size)


@lru_cache(maxsize=1 << 12)
def _head(in_c: int, final_expand_c: int, last_c: int, n_classes: int, size: int, array: Array) -> _Part:
    """`final_expand_layer`, global average pool, `feature_mix_layer` (no BN, no bias) and the classifier."""
    params, macs, acts, out, runtime = _conv_bn(in_c, final_expand_c, 1, 1, size, size, True, array)
    rows = [LayerCost("final_expand_layer", params, macs, acts, out, in_c * size * size + out, runtime)]
    rows.append(LayerCost("global_avg_pool", 0, 0, 0, final_expand_c, out + final_expand_c))
    params, macs, acts, out, runtime = _conv_bn(final_expand_c, last_c, 1, 1, 1, 1, False, array)
    rows.append(LayerCost("feature_mix_layer", params, macs, acts, out, final_expand_c + out, runtime))
    params, macs, acts, runtime = _layer(last_c, n_classes, 1, 1, 1, 1, True, array)
    rows.append(LayerCost("classifier", params, macs, acts, acts, last_c + n_classes, runtime))
    return _part(rows, 1)


def clear_cost_cache() -> None:
    """Empty the per-layer caches that every `CostModel` shares (for timing, or to free memory)."""
    for fn in (_dynamic_block, _stem, _head):
        fn.cache_clear()


class CostModel:
    """Analytic cost of the subnets of the OFA MobileNetV3 supernet described by `cfg`.

    `model(arch)` gives `CostMetrics`, `model.counts(arch)` the exact integers and `model.layers(arch)` the
    per-operation table they are summed (and, for `peak_act`, maximised) from; `latency` is on an `array` =
    `(s1, s2)` systolic array. Architectures follow the search
    space's convention: layer `i` of stage `s` is index `s * L + i` of `ks` and `e`, with `L = len(ks) // 5`
    slots per stage (4 for the `ofa_mbv3` space), of which the first `d[s]` are used.
    """

    def __init__(self, cfg: SupernetConfig, array: Array = DEFAULT_ARRAY) -> None:
        self.cfg = cfg
        self.array = (int(array[0]), int(array[1]))
        widths = [make_divisible(w * cfg.width_mult, _DIVISOR) for w in _BASE_WIDTHS]
        self._stem_c, self._block0_c = widths[0], widths[1]
        self._stage_c = tuple(widths[2:])
        self._final_expand_c = make_divisible(_BASE_FINAL_EXPAND * cfg.width_mult, _DIVISOR)
        self._last_c = make_divisible(_BASE_LAST * cfg.width_mult, _DIVISOR)
        self._ks = frozenset(cfg.ks_list)
        self._es = frozenset(cfg.e_list)
        self._ds = frozenset(cfg.d_list)

    def __call__(self, arch: Arch) -> CostMetrics:
        """Params, MACs, activations, peak activations and systolic latency of `arch`, in millions."""
        return self.counts(arch).to_metrics()

    def counts(self, arch: Arch) -> CostCounts:
        """The exact integer counts of `arch`."""
        params = macs = activations = peak = runtime = 0
        for _, part in self._parts(arch):
            params += part.params
            macs += part.macs
            activations += part.activations
            runtime += part.runtime
            if part.peak > peak:
                peak = part.peak
        return CostCounts(params, macs, activations, peak, runtime)

    def layers(self, arch: Arch) -> list[LayerCost]:
        """Every operation of `arch` in execution order, named after the subnet's modules (`blocks.3.add`, ...)."""
        return [row._replace(name=prefix + row.name) for prefix, part in self._parts(arch) for row in part.rows]

    def _parts(self, arch: Arch) -> Iterator[tuple[str, _Part]]:
        ks, es, ds, resolution = self._fields(arch)
        slots = len(ks) // _N_STAGES
        stem = _stem(self._stem_c, self._block0_c, resolution, self.array)
        yield "", stem
        size, in_c, index = stem.size, self._block0_c, 1
        for s, depth in enumerate(ds):
            out_c, use_se = self._stage_c[s], _STAGE_SE[s]
            for i in range(depth):
                j = s * slots + i
                k, e = ks[j], es[j]
                if k not in self._ks:
                    raise InvalidArchitecture(f"ks[{j}] = {k!r} is not one of {self.cfg.ks_list}")
                if e not in self._es:
                    raise InvalidArchitecture(f"e[{j}] = {e!r} is not one of {self.cfg.e_list}")
                stride = _STAGE_STRIDES[s] if i == 0 else 1
                block = _dynamic_block(in_c, out_c, int(k), int(e), stride, use_se, size, self.array)
                yield f"blocks.{index}.", block
                size, in_c, index = block.size, out_c, index + 1
        yield "", _head(in_c, self._final_expand_c, self._last_c, self.cfg.n_classes, size, self.array)

    def _fields(self, arch: Arch) -> tuple[Sequence[int], Sequence[int], Sequence[int], int]:
        """`ks`, `e`, `d`, `r` of `arch` after checking shapes, depths and resolution (choices checked lazily)."""
        try:
            ks, es, ds, resolution = arch["ks"], arch["e"], arch["d"], arch["r"]
        except (KeyError, TypeError) as err:
            raise InvalidArchitecture(f"architecture must be a dict with keys ks, e, d, r; got {arch!r}") from err
        if len(ds) != _N_STAGES:
            raise InvalidArchitecture(f"architecture field 'd' must list {_N_STAGES} depths, got {ds!r}")
        if len(ks) != len(es) or len(ks) % _N_STAGES:
            raise InvalidArchitecture(
                f"architecture fields 'ks' and 'e' must have the same length, a multiple of {_N_STAGES}; "
                f"got {len(ks)} and {len(es)}"
            )
        slots = len(ks) // _N_STAGES
        for s, d in enumerate(ds):
            if d not in self._ds or d > slots:
                raise InvalidArchitecture(f"d[{s}] = {d!r} is not one of {self.cfg.d_list} (at most {slots})")
        if isinstance(resolution, bool) or not hasattr(resolution, "__index__") or int(resolution) < 1:
            raise InvalidArchitecture(f"resolution r = {resolution!r} is not a positive integer")
        return ks, es, ds, int(resolution)


@lru_cache(maxsize=64)
def cost_model(cfg: SupernetConfig, array: Array = DEFAULT_ARRAY) -> CostModel:
    """The `CostModel` of supernet `cfg` on `array`, built once and shared."""
    return CostModel(cfg, tuple(array))


def compute_metrics(arch: Arch, cfg: SupernetConfig, array: Array = DEFAULT_ARRAY) -> CostMetrics:
    """Analytic `CostMetrics` of `arch` on the supernet `cfg`, through a `CostModel` cached per `cfg` and array."""
    return cost_model(cfg, tuple(array))(arch)


def measure_counts(model: nn.Module, resolution: int, array: Array = DEFAULT_ARRAY) -> CostCounts:
    """`hw.measure.measure_counts` on a `resolution`² RGB image, with `peak_act` traced on static ofa MobileNetV3s."""
    tracer = OFAMobileNetV3LiveTracer if is_static_ofa_mbv3(model) else None
    return measure_network(model, (3, resolution, resolution), array, tracer)


def measure(model: nn.Module, resolution: int, array: Array = DEFAULT_ARRAY) -> CostMetrics:
    """`measure_counts` in millions (`peak_act` NaN for networks that are not static ofa MobileNetV3s)."""
    return measure_counts(model, resolution, array).to_metrics()
