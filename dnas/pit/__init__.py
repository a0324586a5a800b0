"""PIT (pruning in time): differentiable search of channels, receptive fields and dilations by trainable masks."""

from dnas.pit.layers import PIT_LAYERS, PITBatchNorm1d, PITBatchNorm2d, PITConv1d, PITConv2d, PITLinear, pit_layer_for
from dnas.pit.model import PIT

__all__ = [
    "PIT",
    "PIT_LAYERS",
    "PITBatchNorm1d",
    "PITBatchNorm2d",
    "PITConv1d",
    "PITConv2d",
    "PITLinear",
    "pit_layer_for",
]
