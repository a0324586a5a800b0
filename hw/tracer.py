"""The one module tracer: which leaf layers a forward pass runs, in order, with their input and output shapes.

Every cost measured on a built network starts here: the systolic latency and the exact per-layer costs
(`hw.layers.layer_shapes`), upstream CNAS's activation count (`hw.measure`) and the DARTS candidate cost tables.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class LayerCall:
    """One executed layer: its qualified name, the module, the shapes of its tensor inputs and of its output.

    Shapes include the batch dimension. A module returning several tensors records the first one.
    """

    name: str
    module: nn.Module
    inputs: tuple[torch.Size, ...]
    output: torch.Size


def is_leaf(module: nn.Module) -> bool:
    """Whether `module` has no child modules (what the tracer records by default)."""
    return next(module.children(), None) is None


def _first_tensor(value: Any) -> Tensor | None:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, list | tuple):
        return next((t for t in map(_first_tensor, value) if t is not None), None)
    return None


class ModuleTracer:
    """Forward hooks that record a `LayerCall` for every call of a module of `model` accepted by `include`.

    Use as a context manager around forward passes; `calls` lists them in execution order (a module called twice
    appears twice). The hooks are removed on exit.
    """

    def __init__(self, model: nn.Module, include: Callable[[nn.Module], bool] = is_leaf) -> None:
        self.model = model
        self.include = include
        self.calls: list[LayerCall] = []
        self._handles: list[Any] = []

    def __enter__(self) -> ModuleTracer:
        self.calls.clear()
        for name, module in self.model.named_modules():
            if self.include(module):
                self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, name: str) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            out = _first_tensor(output)
            if out is not None:
                shapes = tuple(t.shape for t in inputs if isinstance(t, Tensor))
                self.calls.append(LayerCall(name, module, shapes, out.shape))

        return hook


def example_input(model: nn.Module, input_shape: Sequence[int]) -> Tensor:
    """Zeros of one sample of `input_shape` (batch 1 added), on the device and dtype of `model`'s first parameter."""
    first = next(model.parameters(), None)
    device, dtype = (first.device, first.dtype) if first is not None and first.is_floating_point() else (None, None)
    return torch.zeros(1, *input_shape, device=device, dtype=dtype)


def trace(
    model: nn.Module, input_shape: Sequence[int], include: Callable[[nn.Module], bool] = is_leaf
) -> list[LayerCall]:
    """The layer calls of one batch-1 forward pass on zeros of `input_shape`, in eval mode without gradients.

    The model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), ModuleTracer(model, include) as tracer:
            model(example_input(model, input_shape))
    finally:
        model.train(was_training)
    return tracer.calls
