"""The façade every differentiable engine offers: a cost regulariser, exact costs, parameter groups and export."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from torch import Tensor, nn

from dnas.hw import COST_MODELS


class DNAS(nn.Module, ABC):
    """A searchable network: train it with `task_loss + strength * get_regularization_loss()`, then export it.

    `regularizer` names a cost model of `dnas.hw.COST_MODELS` (`size` or `macs`); an unknown name is a `UsageError`.
    """

    def __init__(self, regularizer: str) -> None:
        super().__init__()
        COST_MODELS.get(regularizer)  # an unknown name fails here, with the choices
        self.regularizer = regularizer

    @abstractmethod
    def get_regularization_loss(self) -> Tensor:
        """The differentiable cost of the current architecture (its value equals the binarised cost)."""

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
