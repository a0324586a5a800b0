"""The façade every differentiable engine offers: a cost regulariser, exact costs, parameter groups and export."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from torch import Tensor, nn

from hw import COST_MODELS, HardwareModel, create_hardware


class DNAS(nn.Module, ABC):
    """A searchable network: train it with `task_loss + strength * get_regularization_loss()`, then export it.

    `regularizer` names any cost model of `hw.COST_MODELS` (`params` / `size`, `macs`, `activations`, `peak_act`,
    `latency`, ...); `hardware` is the `hw` hardware model (name or instance) that `latency` runs on. An unknown
    name is a `UsageError`. The costs cover the layers of the kinds in `cost_kinds` (`hw.LAYER_KINDS` names).
    """

    cost_kinds: ClassVar[tuple[str, ...]] = ("conv", "linear")

    def __init__(self, regularizer: str = "params", hardware: str | HardwareModel | None = None) -> None:
        super().__init__()
        self.regularizer = COST_MODELS.entry(regularizer).name  # an unknown name fails here, with the choices
        self.hardware = create_hardware(hardware)

    @abstractmethod
    def cost(self, name: str | None = None) -> Tensor:
        """The differentiable cost of the current architecture under cost model `name` (default `regularizer`).

        Its value is the cost model's tensor form on the binarised (or one-hot) architecture.
        """

    def epoch_end(self, epoch: int, epochs: int) -> None:
        """Called by a training loop after each epoch (`epoch` from 0 of `epochs`): schedules such as a temperature.

        Does nothing by default.
        """

    def get_regularization_loss(self) -> Tensor:
        """The differentiable cost (`regularizer`) of the current architecture."""
        return self.cost()

    @abstractmethod
    def get_size(self) -> int:
        """Parameters of the current (binarised) architecture."""

    @abstractmethod
    def get_macs(self) -> int:
        """MACs per sample of the current (binarised) architecture."""

    @abstractmethod
    def arch_export(self) -> nn.Module:
        """A plain PyTorch module implementing the current architecture with its weights."""

    @abstractmethod
    def arch_summary(self) -> dict[str, Any]:
        """Per-layer description of the current architecture and its totals."""

    @abstractmethod
    def arch_parameters(self) -> list[nn.Parameter]:
        """The architecture parameters (masks, choice weights), to give their own optimiser."""

    def net_parameters(self) -> list[nn.Parameter]:
        """The ordinary weights: every parameter that is not an architecture parameter."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]
