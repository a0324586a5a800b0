"""The `PIT` engine (a plain model in, a searchable model out, then a smaller plain model back) and its base.

`MaskedGraph` is what PIT and FBNetV2's graph engine share: the traced model with searchable layers, channel groups
shared across additions and products, one masker per group from an engine-given factory, the exact costs of the
current architecture, and export.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from dnas.base import DNAS
from dnas.pit.graph import MaskerFactory, analyse, assign_maskers, convert_layers, own_masker, set_module, trace
from dnas.pit.layers import PITConv1d, PITLayer
from dnas.pit.masks import BaseMasker, Masker
from hw import HardwareModel, Number, network_cost
from utils.errors import UsageError

EXPORTED_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Linear)


class MaskedGraph(DNAS):
    """A traced copy of `model` whose conv / linear layers (and batch norms) are masked, one masker per group.

    `model` is traced with torch.fx on inputs of `input_shape` (without the batch dimension). With
    `autoconvert_layers` every `nn.Conv1d`, `nn.Conv2d` (plain or depthwise) and `nn.Linear` becomes searchable,
    except those named in `exclude_names` or of a type in `exclude_types`; without it only the PIT layers already
    in `model` are searched; batch norms always follow their input's channel mask. Layers whose outputs are added
    or multiplied share one masker, made by `factory` from the group's first layer. The exact costs cover the
    searchable conv / linear layers, per sample (batch norms are not counted). `model` itself is not modified.
    """

    def __init__(
        self,
        model: nn.Module,
        input_shape: Sequence[int],
        regularizer: str,
        hardware: str | HardwareModel | None,
        factory: MaskerFactory = own_masker,
        train_channels: bool = True,
        autoconvert_layers: bool = True,
        exclude_names: Iterable[str] = (),
        exclude_types: Iterable[type[nn.Module]] = (),
    ) -> None:
        super().__init__(regularizer, hardware)
        if not input_shape or any(not isinstance(d, int) or d < 1 for d in input_shape):
            raise UsageError(f"input_shape must be positive integers without the batch size, got {input_shape!r}")
        self.input_shape = tuple(input_shape)
        self.seed = trace(copy.deepcopy(model), self.input_shape)
        convert_types = tuple(exclude_types) + (() if autoconvert_layers else (nn.Conv1d, nn.Conv2d, nn.Linear))
        convert_layers(self.seed, exclude_names, convert_types)
        analysis = analyse(self.seed)
        assign_maskers(self.seed, analysis, train_channels, factory)
        self.layer_names = list(analysis.inputs)

    def forward(self, x: Tensor) -> Tensor:
        """The masked network's output."""
        return self.seed(x)

    def searchable_layers(self) -> dict[str, PITLayer]:
        """The searchable conv / linear layers by name (batch norms excluded)."""
        layers = {name: self.seed.get_submodule(name) for name in self.layer_names}
        return {name: layer for name, layer in layers.items() if isinstance(layer, PITLayer)}

    def net_parameters(self) -> list[nn.Parameter]:
        """The ordinary weights: every parameter that belongs to no masker."""
        masks = {id(p) for m in self.modules() if isinstance(m, BaseMasker) for p in m.parameters()}
        return [p for p in self.parameters() if id(p) not in masks]

    def exact_cost(self, name: str) -> Number:
        """The exact cost under cost model `name` of the current architecture's searchable layers (integer counts)."""
        with torch.no_grad():
            shapes = [layer.exact_shape() for layer in self.searchable_layers().values()]
        return network_cost(name, shapes, self.hardware)

    def get_size(self) -> int:
        """Weights and biases of the searchable layers in the current architecture."""
        return int(self.exact_cost("params"))

    def get_macs(self) -> int:
        """MACs per sample of the searchable layers in the current architecture."""
        return int(self.exact_cost("macs"))

    def arch_export(self) -> nn.Module:
        """A plain GraphModule with the masked channels, taps and batch-norm channels removed."""
        exported = copy.deepcopy(self.seed)
        for name in self.layer_names:
            set_module(exported, name, exported.get_submodule(name).export_module())
        return exported

    def arch_summary(self) -> dict[str, Any]:
        """Per exported conv / linear layer: channels in and out, kernel and dilation; plus params and MACs."""
        layers = [
            {
                "name": name,
                "type": type(module).__name__,
                "in": getattr(module, "in_channels", getattr(module, "in_features", None)),
                "out": getattr(module, "out_channels", getattr(module, "out_features", None)),
                "kernel": list(getattr(module, "kernel_size", ())),
                "dilation": list(getattr(module, "dilation", ())),
            }
            for name, module in self.arch_export().named_modules()
            if isinstance(module, EXPORTED_LAYERS)
        ]
        return {"layers": layers, "params": self.get_size(), "macs": self.get_macs()}


class PIT(MaskedGraph):
    """PIT: prune output channels, receptive fields and dilations of a network's conv / linear layers by training.

    See `MaskedGraph` for the conversion. Every group's masker is alpha (`ChannelMasker`); `PITConv1d` layers also
    search their receptive field (beta) and dilation (gamma). `train_channels` / `train_rf` / `train_dilation`
    = False freeze them. The regulariser is any `hw` cost model (`latency` on `hardware`) of the binarised masks.
    """

    def __init__(
        self,
        model: nn.Module,
        input_shape: Sequence[int],
        regularizer: str = "params",
        autoconvert_layers: bool = True,
        exclude_names: Iterable[str] = (),
        exclude_types: Iterable[type[nn.Module]] = (),
        train_channels: bool = True,
        train_rf: bool = True,
        train_dilation: bool = True,
        hardware: str | HardwareModel | None = None,
    ) -> None:
        super().__init__(
            model, input_shape, regularizer, hardware, own_masker, train_channels, autoconvert_layers,
            exclude_names, exclude_types,
        )  # fmt: skip
        for layer in self.seed.modules():
            if isinstance(layer, PITConv1d):
                layer.beta_masker.trainable = train_rf and not bool(layer.beta_masker.fixed.all())
                layer.gamma_masker.trainable = train_dilation and not bool(layer.gamma_masker.fixed.all())

    def cost(self, name: str | None = None) -> Tensor:
        """The cost model's value on the searchable layers' soft shapes: the binarised cost, with gradients."""
        shapes = [layer.layer_shape() for layer in self.searchable_layers().values()]
        return torch.as_tensor(network_cost(name or self.regularizer, shapes, self.hardware), dtype=torch.float32)

    def arch_parameters(self) -> list[nn.Parameter]:
        """Every mask parameter (alpha, beta, gamma), each once."""
        found = {id(m.theta): m.theta for m in self.modules() if isinstance(m, Masker)}
        return list(found.values())
