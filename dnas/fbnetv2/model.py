"""The `FBNetV2` engine: a searchable chain built from an `ArchDef`, its expected costs and its export."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from dnas.base import DNAS
from dnas.fbnetv2.arch import ArchDef
from dnas.fbnetv2.layers import LAYER_TYPES, SearchLayer
from hw import COST_MODELS, HardwareModel, Number, combine, model_cost

Choices = list[tuple[int, int]]  # per layer: (width index, kernel index)


class FBNetV2(DNAS):
    """FBNetV2 channel (and kernel) masking over `arch_def`, regularised by any `hw` cost model (default latency).

    `get_regularization_loss()` is the expected cost under `regularizer` (softmax probabilities of the choices;
    each layer's input channels are the previous layer's expected width; `latency` on `hardware` with the smooth
    ceiling) divided by the exact cost of the maximal network, so a strength `lambda` weighs the whole network
    against the task loss. `temperature` is the Gumbel-softmax temperature used in training; evaluation uses the
    arg-max choices, and then computes what `arch_export` does. Costs cover the conv / linear layers.
    """

    def __init__(
        self,
        arch_def: ArchDef,
        hardware: str | HardwareModel | None = None,
        temperature: float = 5.0,
        regularizer: str = "latency",
    ) -> None:
        super().__init__(regularizer, hardware)
        self.arch_def = arch_def
        self.temperature = temperature
        layers, channels, size = [], arch_def.input_shape[0], arch_def.input_shape[1:]
        for spec in arch_def.layers:
            layer = LAYER_TYPES.get(spec.kind)(spec, channels, size)
            layers.append(layer)
            channels, size = layer.out_channels, layer.next_size()
        self.layers = nn.ModuleList(layers)
        largest = self.export([(len(layer.widths) - 1, len(layer.spec.kernels) - 1) for layer in self.layers])
        self.reference_latency = self._exact("latency", largest)
        self.reference_cost = self._exact(self.regularizer, largest)

    @property
    def searchable(self) -> list[SearchLayer]:
        """The layers, typed."""
        return list(self.layers)  # type: ignore[arg-type]

    def forward(self, x: Tensor) -> Tensor:
        """The masked network's output."""
        mask = torch.ones(self.arch_def.input_shape[0], device=x.device)
        for layer in self.searchable:
            x, mask = layer(x, mask, self.temperature)
        return x

    def cost(self, name: str | None = None) -> Tensor:
        """The expected cost under cost model `name` (default `regularizer`) of the softmax-weighted choices."""
        name = COST_MODELS.entry(name or self.regularizer).name
        cost = COST_MODELS.get(name)
        channels = torch.tensor(float(self.arch_def.input_shape[0]))
        values = []
        for layer in self.searchable:
            shape, probs, channels = layer.expected_shape(channels)
            values.append((probs * cost(shape, self.hardware)).sum())
        return combine(name, values)

    def get_regularization_loss(self) -> Tensor:
        """Expected cost over the maximal network's exact cost."""
        return self.cost() / self.reference_cost

    def choices(self) -> Choices:
        """The arg-max `(width index, kernel index)` of every layer."""
        return [(layer.channels.index(), layer.kernels.index()) for layer in self.searchable]

    def export(self, choices: Choices) -> nn.Sequential:
        """A plain network at `choices`, with the weights of the maximal tensors (copies)."""
        modules: list[nn.Module] = []
        channels = self.arch_def.input_shape[0]
        for layer, (width, kernel) in zip(self.searchable, choices, strict=True):
            plain, channels = layer.export(channels, width, kernel)
            modules += plain
        return nn.Sequential(*modules).to(next(self.parameters()).device)

    def arch_export(self) -> nn.Sequential:
        """The arg-max network as plain, genuinely smaller Conv2d / BatchNorm2d / Linear layers."""
        return self.export(self.choices())

    def _exact(self, name: str, model: nn.Module) -> Number:
        return model_cost(name, model, self.arch_def.input_shape, self.cost_kinds, self.hardware)

    def get_latency(self) -> Number:
        """Exact latency of the arg-max network on `hardware`, batch 1 (cycles on a systolic array)."""
        return self._exact("latency", self.arch_export())

    def get_size(self) -> int:
        """Weights and biases of the arg-max network's conv / linear layers (batch norms not counted)."""
        return int(self._exact("params", self.arch_export()))

    def get_macs(self) -> int:
        """MACs per sample of the arg-max network's conv / linear layers."""
        return int(self._exact("macs", self.arch_export()))

    def arch_parameters(self) -> list[nn.Parameter]:
        """The choice logits (width and kernel) of every layer with more than one option."""
        choices = [c for layer in self.searchable for c in (layer.channels, layer.kernels)]
        return [c.logits for c in choices if isinstance(c.logits, nn.Parameter)]

    def arch_summary(self) -> dict[str, Any]:
        """Per layer: kind, chosen width and kernel, their probabilities; totals of the arg-max network."""
        layers = []
        for layer, (width, kernel) in zip(self.searchable, self.choices(), strict=True):
            layers.append(
                {
                    "kind": layer.spec.kind,
                    "width": layer.widths[width] if layer.spec.kind != "dwconv" else None,
                    "kernel": layer.spec.kernels[kernel],
                    "width_probs": [round(p, 4) for p in layer.channels.probs().detach().tolist()],
                    "kernel_probs": [round(p, 4) for p in layer.kernels.probs().detach().tolist()],
                }
            )
        return {
            "layers": layers,
            "latency": self.get_latency(),
            "reference_latency": self.reference_latency,
            "latency_ratio": self.get_latency() / self.reference_latency,
            "params": self.get_size(),
            "macs": self.get_macs(),
            "hardware": repr(self.hardware),
        }
