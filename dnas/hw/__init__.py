"""Cost models shared by every differentiable engine: parameters and MACs of convolutions and linear layers."""

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

__all__ = [
    "COST_MODELS",
    "LayerShape",
    "as_float",
    "conv_macs",
    "conv_params",
    "linear_macs",
    "linear_params",
    "module_shape",
]
