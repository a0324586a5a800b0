"""Cost models shared by every differentiable engine: params, MACs and systolic-array latency of conv / linear."""

from dnas.hw.costs import (
    COST_MODELS,
    LayerShape,
    as_float,
    conv_macs,
    conv_params,
    linear_macs,
    linear_params,
    module_shape,
)
from dnas.hw.systolic import (
    HARDWARE_MODELS,
    SystolicArray,
    conv_runtime,
    module_runtime,
    smooth_ceil,
    systolic_latency,
    trace_layers,
)

__all__ = [
    "COST_MODELS",
    "HARDWARE_MODELS",
    "LayerShape",
    "SystolicArray",
    "as_float",
    "conv_macs",
    "conv_params",
    "conv_runtime",
    "linear_macs",
    "linear_params",
    "module_runtime",
    "module_shape",
    "smooth_ceil",
    "systolic_latency",
    "trace_layers",
]
