"""Tracing a model with torch.fx, swapping in searchable layers, and finding which layers share channel masks.

The analysis walks the traced graph once, in topological order, and gives every tensor an *info*: where its
channels (dimension 1) come from. A searchable layer starts a new channel group; batch norms, depthwise
convolutions and zero-preserving element-wise ops (ReLU, pooling, dropout, scaling by a number, ...) pass their
input's info on; `add`/`sub`/`mul` of two tensors merge the groups of their operands (both must keep the same
channels, so they share one masker; a `[N, C, 1, 1]` operand broadcast over positions too, as in
squeeze-excitation); `cat` on dimension 1 concatenates infos; flattening multiplies by the spatial size.

Pruned channels are exact zeros, which is what lets export drop them. Channel-wise ops that do not keep zeros at
zero (adding a number, sigmoids) give a `Shifted` info: same channels, but pruned ones may be non-zero. Multiplying
by a tensor that is zero there (h-swish `x * relu6(x + 3) / 6`, the squeeze-excitation product `x * y`) or a
masking layer (batch norm, depthwise convolution) makes them zeros again; a shifted tensor read by any other layer
or reaching the output has its channels frozen. Anything else is *unknown*: the channels of its inputs are frozen
(kept whole) and its output counts as fixed, which keeps the exported network consistent. So are the channels of
the graph's outputs: the classifier keeps every class.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from dnas.pit.features import ConcatFeatures, ConstFeatures, FeaturesCalculator, FlattenFeatures, MaskerFeatures
from dnas.pit.layers import PITLayer, PITModule, pit_layer_for
from dnas.pit.masks import BaseMasker
from utils.errors import UsageError

SAME_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Tanh, nn.GELU, nn.SiLU, nn.Hardswish, nn.ELU, nn.Identity,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d,
    nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
)  # fmt: skip
SAME_FUNCTIONS: set[Callable[..., Any]] = {
    F.relu, torch.relu, F.relu6, F.leaky_relu, torch.tanh, F.gelu, F.silu, F.hardswish, F.elu, F.dropout,
    F.max_pool1d, F.max_pool2d, F.avg_pool1d, F.avg_pool2d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
}  # fmt: skip
SAME_METHODS = {"relu", "tanh", "contiguous", "clone"}
SHIFT_MODULES = (nn.Sigmoid, nn.Hardsigmoid)  # channel-wise, but f(0) != 0
SHIFT_FUNCTIONS: set[Callable[..., Any] | str] = {torch.sigmoid, F.sigmoid, F.hardsigmoid, "sigmoid"}
# element-wise binary ops, functions and method names: a pruned (zero) channel stays zero in a product when either
# operand is zero there, in a sum or difference when both are; a quotient is understood as tensor / number only
PRODUCTS: set[Callable[..., Any] | str] = {operator.mul, torch.mul, "mul"}
SUMS: set[Callable[..., Any] | str] = {operator.add, torch.add, "add", operator.sub, torch.sub, "sub"}
QUOTIENTS: set[Callable[..., Any] | str] = {operator.truediv, torch.div, "div"}
REDUCE_FUNCTIONS: set[Callable[..., Any]] = {torch.mean, torch.amax, "mean", "amax"}
FLATTEN_FUNCTIONS: set[Callable[..., Any]] = {torch.flatten}
FLATTEN_METHODS = {"flatten", "view", "reshape"}
SHAPE_READS: set[Callable[..., Any] | str] = {"size", "dim", getattr}  # read shapes only: channels may change


class Tracer(fx.Tracer):
    """The fx tracer, with PIT layers kept as leaves."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        """PIT layers and the standard torch.nn layers are leaves."""
        return isinstance(m, PITModule) or super().is_leaf_module(m, module_qualified_name)


def trace(model: nn.Module, input_shape: Sequence[int]) -> fx.GraphModule:
    """`model` as a GraphModule whose nodes carry their output shapes (batch of one); clear errors otherwise.

    A model that is itself a single layer (`nn.Conv1d(...)`) is wrapped in `nn.Sequential`, so its name becomes `0`.
    """
    tracer = Tracer()
    if tracer.is_leaf_module(model, ""):
        model = nn.Sequential(model)
    try:
        graph = tracer.trace(model)
    except Exception as err:
        raise UsageError(f"cannot trace {type(model).__name__} with torch.fx ({type(err).__name__}: {err})") from err
    gm = fx.GraphModule(model, graph, type(model).__name__)
    propagate_shapes(gm, input_shape)
    return gm


def propagate_shapes(gm: fx.GraphModule, input_shape: Sequence[int]) -> None:
    """Record every node's output shape (`node.meta["tensor_meta"]`) from a forward pass in eval mode."""
    parameter = next(gm.parameters(), None)
    example = torch.zeros(1, *input_shape, device=None if parameter is None else parameter.device)
    was_training = gm.training
    gm.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(example)
    except Exception as err:
        raise UsageError(
            f"{type(gm).__name__} fails on an input of shape {tuple(input_shape)} (no batch): {err}"
        ) from err
    finally:
        gm.train(was_training)


def _shape(node: Any) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
    return tuple(meta.shape) if isinstance(meta, TensorMetadata) else None


def set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    """Put `module` at the dotted path `name` of `root`."""
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, module)


def convert_layers(
    gm: fx.GraphModule, exclude_names: Iterable[str], exclude_types: tuple[type[nn.Module], ...]
) -> None:
    """Replace every convertible plain layer of `gm` (except the excluded ones) by its PIT version, in place."""
    excluded = set(exclude_names)
    unknown = excluded - dict(gm.named_modules()).keys()
    if unknown:
        raise UsageError(f"exclude_names: no layer called {', '.join(sorted(unknown))} in {type(gm).__name__}")
    for node in gm.graph.nodes:
        if node.op != "call_module" or node.target in excluded:
            continue
        module = gm.get_submodule(node.target)
        pit_type = pit_layer_for(module)
        if pit_type is None or isinstance(module, exclude_types) or not pit_type.convertible(module):
            continue
        if isinstance(module, nn.Linear) and len(_shape(node.args[0]) or ()) != 2:
            continue  # features along the last dimension of a >2-D tensor: not dimension 1, not searched
        set_module(gm, node.target, pit_type.from_module(module))


# Infos: where the channels of a tensor come from.
@dataclass(frozen=True)
class Const:
    """A fixed number of channels."""

    n: int


@dataclass(frozen=True)
class Group:
    """The output channels of the group of layers whose representative is `key`."""

    key: str


@dataclass(frozen=True)
class Cat:
    """Channels concatenated from `parts`."""

    parts: tuple[Info, ...]


@dataclass(frozen=True)
class Flat:
    """Channels of `inner` flattened with `positions` spatial positions each."""

    inner: Info
    positions: int


@dataclass(frozen=True)
class Shifted:
    """The channels of `inner`, whose pruned channels may hold non-zero values."""

    inner: Info


Info = Const | Group | Cat | Flat | Shifted


def shifted(info: Info) -> Info:
    """`info` after a channel-wise op that may turn zeros into non-zeros (fixed channels stay fixed)."""
    return info if isinstance(info, Const | Shifted) else Shifted(info)


def unshifted(info: Info) -> Info:
    """The channels of `info`, whatever the values of its pruned channels."""
    return info.inner if isinstance(info, Shifted) else info


class ChannelGroups:
    """Union-find over layer names: layers in one group share one channel masker; frozen groups keep all channels."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.frozen: set[str] = set()

    def add(self, key: str) -> Group:
        """A new group holding `key`."""
        self.parent[key] = key
        return Group(key)

    def find(self, key: str) -> str:
        """The representative of `key`'s group."""
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def freeze(self, info: Info | None) -> None:
        """Keep every channel of `info`."""
        if isinstance(info, Group):
            self.frozen.add(self.find(info.key))
        elif isinstance(info, Cat):
            for part in info.parts:
                self.freeze(part)
        elif isinstance(info, Flat | Shifted):
            self.freeze(info.inner)

    def freeze_shifted(self, info: Info) -> None:
        """Keep every channel of the shifted parts of `info` (a layer reading it would see their non-zeros)."""
        if isinstance(info, Shifted):
            self.freeze(info.inner)
        elif isinstance(info, Cat):
            for part in info.parts:
                self.freeze_shifted(part)
        elif isinstance(info, Flat):
            self.freeze_shifted(info.inner)

    def join(self, a: Info, b: Info, channels: int) -> Info:
        """The info of a tensor whose `channels` must match both `a` and `b`: one group, or frozen and fixed."""
        if isinstance(a, Group) and isinstance(b, Group):
            ra, rb = self.find(a.key), self.find(b.key)
            self.parent[rb] = ra
            if rb in self.frozen:
                self.frozen.add(ra)
            return Group(ra)
        if a == b:
            return a
        self.freeze(a)
        self.freeze(b)
        return Const(channels)

    def is_frozen(self, key: str) -> bool:
        """Whether `key`'s group keeps every channel."""
        return self.find(key) in self.frozen


@dataclass
class Analysis:
    """The result of `analyse`: each PIT module's input info and the channel groups."""

    groups: ChannelGroups
    inputs: dict[str, Info]


def _tensor_args(node: fx.Node) -> list[fx.Node]:
    found: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), lambda n: found.append(n) if _shape(n) is not None else None)
    return found


def analyse(gm: fx.GraphModule) -> Analysis:
    """Channel groups and per-layer input infos of a converted, shape-propagated GraphModule."""
    groups = ChannelGroups()
    info: dict[fx.Node, Info] = {}
    inputs: dict[str, Info] = {}
    for node in gm.graph.nodes:
        shape = _shape(node)
        args = _tensor_args(node)
        if node.op == "output":
            for arg in args:
                groups.freeze(info.get(arg))
            continue
        if shape is None:  # sizes, tuples of tensors and other non-tensor values
            if node.target not in SHAPE_READS:
                for arg in args:
                    groups.freeze(info.get(arg))
            continue
        result = _node_info(gm, node, shape, args, info, groups, inputs)
        if result is None:  # unknown op: keep its inputs whole, its output is fixed
            for arg in args:
                groups.freeze(info.get(arg))
            result = Const(shape[1] if len(shape) > 1 else 1)
        info[node] = result
    return Analysis(groups, inputs)


def _node_info(
    gm: fx.GraphModule,
    node: fx.Node,
    shape: tuple[int, ...],
    args: list[fx.Node],
    info: dict[fx.Node, Info],
    groups: ChannelGroups,
    inputs: dict[str, Info],
) -> Info | None:
    """The info of one tensor-valued node, or None when the op is unknown."""
    if node.op in ("placeholder", "get_attr"):
        return Const(shape[1] if len(shape) > 1 else 1)
    first = info.get(args[0]) if args else None
    if first is None:
        return None
    if node.op == "call_module":
        module = gm.get_submodule(node.target)
        if isinstance(module, PITModule):
            if node.target in inputs:
                raise UsageError(f"layer {node.target!r} is called more than once; leave it out with exclude_names")
            inputs[node.target] = first
            if isinstance(module, PITLayer):
                module.positions = math.prod(shape[2:])
                module.in_positions = math.prod((_shape(args[0]) or ())[2:])
            own = groups.add(node.target)
            if module.propagates:  # it masks its output: pruned channels are zeros again
                return groups.join(unshifted(first), own, shape[1])
            groups.freeze_shifted(first)
            return own
        if isinstance(module, SAME_MODULES):
            return first
        if isinstance(module, SHIFT_MODULES):
            return shifted(first)
        if isinstance(module, nn.Flatten) and module.start_dim == 1 and module.end_dim == -1:
            return _flatten(first, _shape(args[0]), shape)
        return None
    target = node.target
    if target in PRODUCTS or target in SUMS or target in QUOTIENTS:
        return _arithmetic(node, shape, args, info, groups)
    if target in SHIFT_FUNCTIONS:
        return shifted(first) if len(args) == 1 else None
    if target in REDUCE_FUNCTIONS:
        dims = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
        dims = (dims,) if isinstance(dims, int) else dims
        keeps = dims is not None and all(d % len(_shape(args[0])) > 1 for d in dims)
        return first if len(args) == 1 and keeps else None
    if target in SAME_FUNCTIONS or target in SAME_METHODS:
        return first if len(args) == 1 else None
    if target is torch.cat:
        dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
        if dim in (1, 1 - len(shape)):
            return Cat(tuple(info[a] for a in args))
        return None
    if target in FLATTEN_FUNCTIONS or target in FLATTEN_METHODS:
        return _flatten(first, _shape(args[0]), shape) if len(args) == 1 else None
    return None


def _arithmetic(
    node: fx.Node, shape: tuple[int, ...], args: list[fx.Node], info: dict[fx.Node, Info], groups: ChannelGroups
) -> Info | None:
    """The info of `a * b`, `a + b`, `a - b` (two tensors of the same channels) or of a tensor and a number."""
    target = node.target
    if len(args) == 2 and target not in QUOTIENTS and not node.kwargs:
        if not all(len(_shape(a)) > 1 and _shape(a)[1] == shape[1] for a in args):
            return None
        a, b = info[args[0]], info[args[1]]
        joined = groups.join(unshifted(a), unshifted(b), shape[1])  # broadcasting over positions is fine
        zero_if = all if target in PRODUCTS else any  # pruned channels stay zero: a product needs one zero operand
        return shifted(joined) if zero_if(isinstance(x, Shifted) for x in (a, b)) else joined
    numbers = [a for a in node.args if a is not args[0]]
    if len(args) != 1 or len(node.args) != 2 or node.kwargs or not isinstance(numbers[0], int | float):
        return None
    if target in QUOTIENTS and node.args[0] is not args[0]:
        return None  # a number divided by a tensor
    return shifted(info[args[0]]) if target in SUMS else info[args[0]]


def _flatten(inner: Info, in_shape: tuple[int, ...] | None, out_shape: tuple[int, ...]) -> Info | None:
    """Flattening `[N, C, *S]` into `[N, C·prod(S)]` (anything else is unknown)."""
    if in_shape is None or len(out_shape) != 2 or len(in_shape) < 2 or out_shape[0] != in_shape[0]:
        return None
    positions = math.prod(in_shape[2:])
    if out_shape[1] != in_shape[1] * positions:
        return None
    return inner if positions == 1 else Flat(inner, positions)


MaskerFactory = Callable[[PITModule], BaseMasker]


def own_masker(layer: PITModule) -> BaseMasker:
    """PIT's masker factory: a group's first layer lends its own alpha masker to the whole group."""
    return layer.out_masker


def assign_maskers(
    gm: fx.GraphModule, analysis: Analysis, train_channels: bool, factory: MaskerFactory = own_masker
) -> dict[str, BaseMasker]:
    """Give every PIT module its group's masker and its features calculator; return the maskers by group.

    `factory(first layer of the group)` makes each group's masker (the engine's kind of mask); a frozen group's
    masker is frozen, and the others train when `train_channels`.
    """
    groups = analysis.groups
    maskers: dict[str, BaseMasker] = {}
    for name in analysis.inputs:  # topological order: a group's representative is its first layer
        root = groups.find(name)
        if root not in maskers:
            maskers[root] = factory(gm.get_submodule(root))
            if groups.is_frozen(root):
                maskers[root].freeze()
            maskers[root].trainable = train_channels and not groups.is_frozen(root)

    def calculator(info: Info) -> FeaturesCalculator:
        if isinstance(info, Shifted):
            return calculator(info.inner)
        if isinstance(info, Group):
            return MaskerFeatures(maskers[groups.find(info.key)])
        if isinstance(info, Cat):
            return ConcatFeatures([calculator(part) for part in info.parts])
        if isinstance(info, Flat):
            return FlattenFeatures(calculator(info.inner), info.positions)
        return ConstFeatures(info.n)

    for name, info in analysis.inputs.items():
        module = gm.get_submodule(name)
        module.out_masker = maskers[groups.find(name)]
        module.in_features_calc = calculator(info)
    return maskers
