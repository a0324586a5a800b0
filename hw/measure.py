"""Measuring the costs of any built network with a batch-1 forward pass: the independent check of analytic models.

`model_cost` applies one registered cost model to the layers a network runs (`hw.tracer`). `measure_counts` gives
the outer search's `CostCounts`: `params` is the plain parameter sum, `macs` `FlopCounterMode` FLOPs / 2,
`activations` upstream CNAS's sum of the output elements of every leaf module of `CNAS_ACTIVATION_TYPES`,
`latency` the systolic-array cycles of the executed layers, and `peak_act` what a live-tensor tracer for the
network's family reports (None without one).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, ExitStack
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hw.costs import network_cost
from hw.hardware import HardwareModel
from hw.layers import Number, call_shapes, layer_shapes
from hw.metrics import CostCounts
from hw.systolic import DEFAULT_ARRAY, SystolicArray
from hw.tracer import ModuleTracer, example_input

CNAS_ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.Conv2d,
    nn.BatchNorm2d,
    nn.Linear,
    nn.Flatten,
    nn.AvgPool2d,
    nn.MaxPool2d,
)
"""Leaf module types whose output elements upstream CNAS sums into `activations`."""


class LiveTracer(Protocol):
    """A context manager that, around one forward pass, measures the peak live tensor elements (`peak`)."""

    peak: int

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: object) -> Any: ...


def model_cost(
    name: str,
    model: nn.Module,
    input_shape: Sequence[int],
    kinds: Iterable[str] | None = None,
    hardware: HardwareModel | None = None,
    soft: bool = False,
) -> Number:
    """Cost under cost model `name` of the layers (of `kinds`, default all) that `model` runs on one sample.

    Exact by default; with `soft` the counts are tensors, so the value is what a regulariser gives for this
    architecture (the same for every cost model whose metadata says it is not `smooth`).
    """
    shapes = layer_shapes(model, input_shape, kinds)
    return network_cost(name, [s.as_tensors() for s in shapes] if soft else shapes, hardware)


def measure_counts(
    model: nn.Module,
    input_shape: Sequence[int],
    array: Sequence[int] = DEFAULT_ARRAY,
    live_tracer: Callable[[nn.Module], AbstractContextManager[LiveTracer]] | None = None,
) -> CostCounts:
    """Exact counts measured on a built network with one batch-1 input of `input_shape` (eval mode, no grad).

    `peak_act` is measured by `live_tracer(model)` when one is given, else None. The model's train/eval mode is
    restored afterwards.
    """
    params = sum(p.numel() for p in model.parameters())
    x = example_input(model, input_shape)
    was_training = model.training
    model.eval()
    try:
        with ExitStack() as stack:
            stack.enter_context(torch.no_grad())
            layers = stack.enter_context(ModuleTracer(model))
            tracer = stack.enter_context(live_tracer(model)) if live_tracer is not None else None
            flops = stack.enter_context(FlopCounterMode(display=False))
            model(x)
            peak = tracer.peak if tracer is not None else None
    finally:
        model.train(was_training)
    activations = sum(math.prod(c.output) for c in layers.calls if isinstance(c.module, CNAS_ACTIVATION_TYPES))
    hardware = SystolicArray(*array)
    latency = sum(hardware.layer_latency(shape) for shape in call_shapes(layers.calls))
    return CostCounts(params, flops.get_total_flops() // 2, activations, peak, latency)
