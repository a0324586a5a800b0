"""PIT (pruning in time): differentiable search of channels, receptive fields and dilations by trainable masks."""

from dnas.pit.layers import PITBatchNorm1d, PITBatchNorm2d, PITConv1d, PITConv2d, PITLinear
from dnas.pit.model import PIT

__all__ = ["PIT", "PITBatchNorm1d", "PITBatchNorm2d", "PITConv1d", "PITConv2d", "PITLinear"]
