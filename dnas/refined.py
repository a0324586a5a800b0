"""A loadable format for refined networks: the constructor specs of their resized layers, and their weights.

The networks that `PIT.arch_export()` and `FBNetV2Graph.arch_export()` return keep the module names of the network
they were made from, with smaller layers. A record (`refined_record`) holds the constructor arguments of every
module of a `SPEC_TYPES` kind, by name, and the state dict: plain values and tensors only, so that
`torch.load(weights_only=True)` reads it back. `rebuild` applies them to a fresh copy of the plain network
(e.g. `space.build_network(arch, n_classes)`), which then computes what the refined network computed.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dnas.pit.graph import set_module
from utils.errors import UsageError
from utils.io import atomic_torch_save

FORMAT = "refined-v1"
Spec = dict[str, Any]


def _conv_spec(m: nn.Module) -> Spec:
    padding = m.padding if isinstance(m.padding, str) else list(m.padding)
    return {
        "in_channels": m.in_channels,
        "out_channels": m.out_channels,
        "kernel_size": list(m.kernel_size),
        "stride": list(m.stride),
        "padding": padding,
        "dilation": list(m.dilation),
        "groups": m.groups,
        "bias": m.bias is not None,
        "padding_mode": m.padding_mode,
    }


def _linear_spec(m: nn.Module) -> Spec:
    return {"in_features": m.in_features, "out_features": m.out_features, "bias": m.bias is not None}


def _norm_spec(m: nn.Module) -> Spec:
    names = ("num_features", "eps", "momentum", "affine", "track_running_stats")
    return {n: getattr(m, n) for n in names}


def _pad_spec(m: nn.Module) -> Spec:
    return {"padding": list(m.padding), "value": m.value}


def _container_spec(m: nn.Module) -> Spec:
    return {}


SPEC_TYPES: dict[str, tuple[type[nn.Module], Callable[[nn.Module], Spec]]] = {
    "Conv1d": (nn.Conv1d, _conv_spec),
    "Conv2d": (nn.Conv2d, _conv_spec),
    "Linear": (nn.Linear, _linear_spec),
    "BatchNorm1d": (nn.BatchNorm1d, _norm_spec),
    "BatchNorm2d": (nn.BatchNorm2d, _norm_spec),
    "ConstantPad1d": (nn.ConstantPad1d, _pad_spec),  # PIT's shifted 1-D windows: Sequential(pad, Conv1d)
    "Sequential": (nn.Sequential, _container_spec),
}
"""The module kinds a record describes: name -> (exact type, its constructor arguments)."""

_KINDS = {cls: name for name, (cls, _) in SPEC_TYPES.items()}


def _described(module: nn.Module) -> bool:
    """Whether `module` is of a spec kind; a Sequential only when its children all are leaves of such kinds."""
    kind = _KINDS.get(type(module))
    if kind != "Sequential":
        return kind is not None
    return all(type(child) in _KINDS and type(child) is not nn.Sequential for child in module.children())


def module_specs(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Per named module of a `SPEC_TYPES` kind (exact type): `{"type": kind, **constructor arguments}`.

    A `nn.Sequential` is described (and rebuilt from its children's specs) only when all its children are
    described leaves, as PIT's `Sequential(ConstantPad1d, Conv1d)`. Values are ints, floats, bools, strings, lists
    and None.
    """
    return {
        name: {"type": _KINDS[type(module)], **SPEC_TYPES[_KINDS[type(module)]][1](module)}
        for name, module in model.named_modules()
        if name and _described(module)
    }


def _placement(model: nn.Module) -> dict[str, Any]:
    tensor = next(iter(model.state_dict().values()), None)
    return {} if tensor is None else {"device": tensor.device, "dtype": tensor.dtype}


def apply_specs(base: nn.Module, specs: Mapping[str, Mapping[str, Any]]) -> nn.Module:
    """A deep copy of `base` with each named module replaced by a fresh one built from its spec (parents first).

    A spec under a module that a spec rebuilt as a `Sequential` becomes its child. A name that is no module of
    `base`, an unknown type or arguments the type does not take are a `UsageError` naming the module.
    """
    model = copy.deepcopy(base)
    modules = dict(model.named_modules())
    placement = _placement(model)
    containers: dict[str, nn.Module] = {}
    for name in sorted(specs, key=lambda n: n.count(".")):
        kwargs = dict(specs[name])
        kind = kwargs.pop("type", None)
        if kind not in SPEC_TYPES:
            raise UsageError(f"refined spec of {name!r}: unknown module type {kind!r} (known: {', '.join(SPEC_TYPES)})")
        try:
            module = SPEC_TYPES[kind][0](**kwargs)
        except (TypeError, ValueError) as err:
            raise UsageError(f"refined spec of {name!r} does not build a {kind}: {err}") from None
        module = module.to(**placement).train(model.training)
        parent, _, child = name.rpartition(".")
        if parent in containers:
            containers[parent].add_module(child, module)
        elif name in modules:
            set_module(model, name, module)
        else:
            raise UsageError(f"refined spec names {name!r}, which is no module of {type(base).__name__}")
        if kind == "Sequential":
            containers[name] = module
    return model


def refined_record(exported: nn.Module, **meta: Any) -> dict[str, Any]:
    """`{"format": "refined-v1", "specs": module_specs(exported), "state_dict": its weights (CPU), **meta}`.

    `meta` (the arch, the engine, its costs...) must hold plain values or tensors and no key of the record.
    """
    taken = sorted({"format", "specs", "state_dict"} & meta.keys())
    if taken:
        raise UsageError(f"refined_record: {', '.join(taken)} cannot be metadata (they are the record's own keys)")
    state = {k: v.detach().cpu().clone() for k, v in exported.state_dict().items()}
    return {"format": FORMAT, "specs": module_specs(exported), "state_dict": state, **meta}


def save_refined(path: str | os.PathLike[str], record: Mapping[str, Any]) -> Path:
    """Write `record` (from `refined_record`) to `path` with `torch.save`, atomically."""
    if record.get("format") != FORMAT:
        raise UsageError(f"save_refined: not a {FORMAT} record (format {record.get('format')!r})")
    return atomic_torch_save(path, dict(record))


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _load_failure(err: BaseException) -> str:
    """What `torch.load` found wrong, in one sentence (not its advice to load untrusted pickles)."""
    text = str(err)
    marker = "WeightsUnpickler error:"
    if marker in text:
        detail = text.split(marker, 1)[1].strip().splitlines()[0]
        return f"not weights-only data ({detail.split('. ')[0].rstrip('.')})"
    return _one_line(err).split(". ")[0]


def load_refined(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The record in `path`, read with `torch.load(weights_only=True)`; a `UsageError` naming the path otherwise."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"refined network file not found: {path}")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many kinds on a corrupt or foreign file
        raise UsageError(f"{path} is not a readable refined network file: {_load_failure(err)}") from None
    kind = record.get("format") if isinstance(record, dict) else type(record).__name__
    if kind != FORMAT:
        raise UsageError(f"{path} is not a refined network file: format {kind!r}, expected {FORMAT!r}")
    if not isinstance(record.get("specs"), dict) or not isinstance(record.get("state_dict"), dict):
        raise UsageError(f"{path} is a damaged refined network file: 'specs' and 'state_dict' must be dicts")
    return record


def rebuild(base: nn.Module, record: Mapping[str, Any]) -> nn.Module:
    """`apply_specs(base, record["specs"])` with the record's weights loaded strictly; a mismatch is a `UsageError`."""
    model = apply_specs(base, record["specs"])
    try:
        model.load_state_dict(record["state_dict"], strict=True)
    except RuntimeError as err:
        raise UsageError(f"the refined weights do not fit {type(base).__name__}: {_one_line(err)}") from None
    return model
