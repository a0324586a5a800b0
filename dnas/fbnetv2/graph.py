"""FBNetV2 on any traceable network, its topology kept (`FBNetV2Graph`).

A Gumbel-softmax width choice per channel group and a kernel choice per depthwise convolution, over PIT's graph
analysis: residual additions and squeeze-excitation products tie the channels of their operands, so those layers
share one width choice.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from dnas.fbnetv2.arch import DEFAULT_FRACTIONS, check_choices, fraction_widths
from dnas.fbnetv2.layers import Choice, center_masks, prefix_masks
from dnas.pit.layers import PITConv1d, PITConv2d, PITLayer, PITModule
from dnas.pit.masks import BaseMasker
from dnas.pit.model import MaskedGraph
from hw import COST_MODELS, HardwareModel, LayerShape, Number, combine
from utils.errors import UsageError

DEFAULT_DW_KERNELS = (3, 5, 7)


class ChoiceMasker(BaseMasker):
    """A choice among nested 0/1 masks `options` (one per row, the last the largest) by Gumbel-softmax weights.

    `choices` are what the options keep (widths, or kernel sizes) and `sizes` what the costs count of each (output
    channels, or kernel taps). Inside `sampled` (a training forward pass of `FBNetV2Graph`) the mask is
    `Σ_j g_j options[j]` with `g` one Gumbel-softmax sample, shared by every layer holding this masker; otherwise
    it is the arg-max option (ties go to the largest), so an untrained masker keeps everything. The costs read the
    softmax mixture (`expected_mask`) or the grid `sizes` with `probs()`.
    """

    def __init__(self, options: Tensor, choices: Sequence[int], sizes: Sequence[int]) -> None:
        super().__init__()
        self.choice = Choice(len(choices))
        self.choices = list(choices)
        self.register_buffer("options", options.float())
        self.register_buffer("sizes", torch.tensor(sizes, dtype=torch.float32))
        self.sample: Tensor | None = None

    @classmethod
    def for_widths(cls, channels: int, fractions: Iterable[float]) -> ChoiceMasker:
        """Keep the first `w` of `channels` channels, `w` among the `fractions` of `channels`."""
        widths = fraction_widths(channels, fractions)
        return cls(prefix_masks(widths, channels), widths, widths)

    @classmethod
    def for_kernels(cls, kernels: Sequence[int]) -> ChoiceMasker:
        """Keep the central `k × k` taps of the largest of the (odd, ascending) `kernels`."""
        return cls(center_masks(tuple(kernels)), kernels, [k * k for k in kernels])

    def probs(self) -> Tensor:
        """The softmax probabilities of the options."""
        return self.choice.probs()

    def chosen(self) -> int:
        """The arg-max option's choice (width or kernel size)."""
        return self.choices[self.choice.index()]

    def _mix(self, weights: Tensor) -> Tensor:
        return torch.tensordot(weights, self.options, dims=1)

    def mask(self) -> Tensor:
        """The sampled mixture inside `sampled`, else the arg-max option."""
        return self._mix(self.choice.one_hot() if self.sample is None else self.sample)

    def expected_mask(self) -> Tensor:
        """The softmax mixture of the options."""
        return self._mix(self.probs())

    def freeze(self) -> None:
        """Keep only the largest option."""
        self.choice = Choice(1).to(self.options.device)
        self.choices = self.choices[-1:]
        self.options = self.options[-1:]
        self.sizes = self.sizes[-1:]


@contextmanager
def sampled(maskers: Iterable[ChoiceMasker], temperature: float, hard: bool = False) -> Iterator[None]:
    """Draw one Gumbel-softmax sample per masker (one-hot with soft gradients when `hard`) for one forward pass."""
    maskers = list(maskers)
    for masker in maskers:
        masker.sample = masker.choice.gumbel(temperature, hard)
    try:
        yield
    finally:
        for masker in maskers:
            masker.sample = None


def width_masker(layer: PITModule, fractions: Iterable[float]) -> ChoiceMasker:
    """The width choice of the channel group that `layer` starts."""
    return ChoiceMasker.for_widths(layer.n_out(), fractions).to(layer.device())


class FBNetV2Graph(MaskedGraph):
    """FBNetV2 width and kernel choices on a traced `model`, residuals and squeeze-excitation kept.

    Every channel group of PIT's analysis (`MaskedGraph`: layers added or multiplied together share one) chooses
    its width among `fractions` of its channels by Gumbel-softmax; every depthwise `nn.Conv2d` with a square odd
    kernel `K` and "same" padding chooses its kernel among the `dw_kernels` up to `K` (and `K`), as the centre of
    its `K × K` weights. Groups that must stay whole (the classifier's output, what unknown ops read) keep one
    option. 1-D convolutions search their channels only.

    In training the forward pass draws one Gumbel-softmax sample per choice at `temperature` (straight-through
    one-hot when `hard`); `epoch_end` anneals it exponentially to `final_temperature`. In evaluation (and outside
    the forward pass) the choices are the arg-max, and the masked model computes exactly `arch_export()`.
    `get_regularization_loss()` is the expected cost under `regularizer` (any `hw` cost model; `latency` on
    `hardware`, default the 16 × 16 systolic array, with the smooth ceiling) over the softmax probabilities,
    divided by the exact cost of the maximal network (`reference_cost`).
    """

    def __init__(
        self,
        model: nn.Module,
        input_shape: Sequence[int],
        regularizer: str = "latency",
        hardware: str | HardwareModel | None = None,
        fractions: Sequence[float] = DEFAULT_FRACTIONS,
        dw_kernels: Sequence[int] = DEFAULT_DW_KERNELS,
        temperature: float = 5.0,
        final_temperature: float = 0.5,
        hard: bool = False,
        exclude_names: Iterable[str] = (),
        exclude_types: Iterable[type[nn.Module]] = (),
    ) -> None:
        check_choices(fractions, dw_kernels)
        if not temperature > 0 or not final_temperature > 0:
            raise UsageError(f"temperatures must be positive, got {temperature} and {final_temperature}")
        factory = partial(width_masker, fractions=tuple(fractions))
        super().__init__(
            model, input_shape, regularizer, hardware, factory, exclude_names=exclude_names, exclude_types=exclude_types
        )
        self.initial_temperature = self.temperature = temperature
        self.final_temperature = final_temperature
        self.hard = hard
        for layer in self.searchable_layers().values():
            if isinstance(layer, PITConv1d):
                layer.beta_masker.freeze()
                layer.gamma_masker.freeze()
            if isinstance(layer, PITConv2d) and layer.propagates and layer.kernel_choices_allowed():
                size = layer.kernel_size[0]
                kernels = sorted({k for k in dw_kernels if k <= size} | {size})
                if len(kernels) > 1:
                    layer.kernel_masker = ChoiceMasker.for_kernels(kernels).to(layer.device())
        self.reference_cost = float(self.exact_cost(self.regularizer))
        self.reference_latency = float(self.exact_cost("latency"))

    def choice_maskers(self) -> list[ChoiceMasker]:
        """Every width and kernel choice, each once."""
        return [m for m in self.seed.modules() if isinstance(m, ChoiceMasker)]

    def forward(self, x: Tensor) -> Tensor:
        """The masked network: one Gumbel-softmax sample per choice in training, the arg-max in evaluation."""
        if not self.training:
            return self.seed(x)
        with sampled(self.choice_maskers(), self.temperature, self.hard):
            return self.seed(x)

    def epoch_end(self, epoch: int, epochs: int) -> None:
        """Anneal the temperature: after `epoch` (from 0) of `epochs`: `t0 · (t_end / t0)^((epoch + 1) / epochs)`."""
        if not 0 <= epoch < epochs:
            raise UsageError(f"epoch {epoch} is not one of the {epochs} epochs")
        ratio = self.final_temperature / self.initial_temperature
        self.temperature = self.initial_temperature * ratio ** ((epoch + 1) / epochs)

    def _choice_grid(self, layer: PITLayer) -> tuple[LayerShape, Tensor]:
        """The layer's shape over its (width × kernel) choices, broadcast, and their probabilities.

        Input features are the producers' expected widths; a depthwise convolution's groups are its own widths.
        """
        out: ChoiceMasker = layer.out_masker  # type: ignore[assignment]
        widths, probs = out.sizes[:, None], out.probs()[:, None]
        kernel: ChoiceMasker | None = getattr(layer, "kernel_masker", None)
        if kernel is None:
            taps, kernel_probs = torch.as_tensor(layer.kernel_taps()).to(widths).reshape(1), widths.new_ones(1)
        else:
            taps, kernel_probs = kernel.sizes, kernel.probs()
        if layer.propagates:
            in_per_group, groups = 1, widths
        else:
            in_per_group, groups = layer.in_features_calc.features(widths.device, expected=True), 1
        shape = LayerShape(
            in_per_group, widths, taps[None], layer.positions, layer.in_positions, groups, layer.bias is not None
        )
        return shape, probs * kernel_probs[None]

    def cost(self, name: str | None = None) -> Tensor:
        """The expected cost under cost model `name` (default `regularizer`) over the softmax probabilities."""
        name = COST_MODELS.entry(name or self.regularizer).name
        cost = COST_MODELS.get(name)
        values = []
        for layer in self.searchable_layers().values():
            shape, probs = self._choice_grid(layer)
            values.append((probs * cost(shape, self.hardware)).sum())
        return torch.as_tensor(combine(name, values))

    def get_regularization_loss(self) -> Tensor:
        """Expected cost over the maximal network's exact cost."""
        return self.cost() / self.reference_cost

    def get_latency(self) -> Number:
        """Exact latency of the arg-max network's searchable layers on `hardware`, batch 1."""
        return self.exact_cost("latency")

    def arch_parameters(self) -> list[nn.Parameter]:
        """The logits of every width and kernel choice with more than one option."""
        return [m.choice.logits for m in self.choice_maskers() if isinstance(m.choice.logits, nn.Parameter)]

    def arch_summary(self) -> dict[str, Any]:
        """The exported layers and totals, the latency, and per channel group / depthwise kernel its choice."""
        groups: dict[int, dict[str, Any]] = {}
        kernels = []
        for name, layer in self.searchable_layers().items():
            out: ChoiceMasker = layer.out_masker  # type: ignore[assignment]
            group = groups.setdefault(id(out), {"layers": [], **_choice_summary(out, "width")})
            group["layers"].append(name)
            kernel: ChoiceMasker | None = getattr(layer, "kernel_masker", None)
            if kernel is not None:
                kernels.append({"layer": name, **_choice_summary(kernel, "kernel")})
        return {
            **super().arch_summary(),
            "latency": self.get_latency(),
            "reference_latency": self.reference_latency,
            "hardware": repr(self.hardware),
            "groups": list(groups.values()),
            "kernels": kernels,
        }


def _choice_summary(masker: ChoiceMasker, what: str) -> dict[str, Any]:
    return {
        what: masker.chosen(),
        f"{what}s": masker.choices,
        "probs": [round(p, 4) for p in masker.probs().detach().tolist()],
    }
