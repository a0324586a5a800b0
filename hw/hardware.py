"""Hardware models: the latency of one layer, exact on integer counts and differentiable on soft (tensor) counts.

`HARDWARE_MODELS` holds them by name; every engine and the `latency` cost model take one by name or instance, so
a new model (one file in `hw/` registering a `HardwareModel` subclass; the package imports every module) reaches
them all.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from torch import nn

from hw.layers import LayerShape, Number, layer_shapes
from utils.registry import Registry

DEFAULT_HARDWARE = "systolic"


class HardwareModel(ABC):
    """The latency of layers on one piece of hardware, in that hardware's unit (cycles for the systolic array)."""

    @abstractmethod
    def layer_latency(self, layer: LayerShape, batch: int = 1) -> Number:
        """Latency of `layer` on `batch` samples: exact for plain counts, a smooth tensor when `layer.is_soft`."""

    def latency(self, model: nn.Module, input_shape: Sequence[int], batch: int = 1) -> Number:
        """Exact latency of a plain model on `batch` inputs of `input_shape`: the sum over the layers it runs."""
        return sum(self.layer_latency(shape, batch) for shape in layer_shapes(model, input_shape))


HARDWARE_MODELS = Registry[HardwareModel]("hardware model")


def create_hardware(hardware: str | HardwareModel | None = None, **kwargs: Any) -> HardwareModel:
    """`hardware` itself when it is a model, else the registered model of that name (default `systolic`)."""
    if isinstance(hardware, HardwareModel):
        return hardware
    return HARDWARE_MODELS.create(hardware or DEFAULT_HARDWARE, **kwargs)
