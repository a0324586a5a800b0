"""The one cost package: per-layer cost models, hardware models and the module tracer (see README.md).

Importing it imports every module of the package, so each registers its cost models, layer kinds and hardware
models by existing: a new hardware model is its own file (and its test), with no line to add here.
"""

from hw.costs import (
    COST_MODELS,
    combine,
    conv_macs,
    conv_params,
    linear_macs,
    linear_params,
    list_cost_models,
    network_cost,
)
from hw.hardware import DEFAULT_HARDWARE, HARDWARE_MODELS, HardwareModel, create_hardware
from hw.layers import (
    LAYER_KINDS,
    LayerShape,
    Number,
    as_float,
    call_shapes,
    layer_kind,
    layer_shapes,
    module_shape,
)
from hw.measure import CNAS_ACTIVATION_TYPES, measure_counts, model_cost
from hw.metrics import CostCounts, CostMetrics
from hw.systolic import DEFAULT_ARRAY, SystolicArray, conv_runtime, smooth_ceil, systolic_latency
from hw.tracer import LayerCall, ModuleTracer, trace
from utils.registry import import_submodules

import_submodules(__name__, __path__)

__all__ = [
    "CNAS_ACTIVATION_TYPES",
    "COST_MODELS",
    "DEFAULT_ARRAY",
    "DEFAULT_HARDWARE",
    "HARDWARE_MODELS",
    "LAYER_KINDS",
    "CostCounts",
    "CostMetrics",
    "HardwareModel",
    "LayerCall",
    "LayerShape",
    "ModuleTracer",
    "Number",
    "SystolicArray",
    "as_float",
    "call_shapes",
    "combine",
    "conv_macs",
    "conv_params",
    "conv_runtime",
    "create_hardware",
    "layer_kind",
    "layer_shapes",
    "linear_macs",
    "linear_params",
    "list_cost_models",
    "measure_counts",
    "model_cost",
    "module_shape",
    "network_cost",
    "smooth_ceil",
    "systolic_latency",
    "trace",
]
