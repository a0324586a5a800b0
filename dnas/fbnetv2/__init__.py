"""FBNetV2-style channel and kernel masking searched against a systolic-array latency model (see README.md)."""

from dnas.fbnetv2.arch import ArchDef, LayerDef, lenet_arch_def, module_arch_def, ofa_arch_def
from dnas.fbnetv2.layers import LAYER_TYPES, Choice, SearchLayer
from dnas.fbnetv2.model import FBNetV2
from dnas.fbnetv2.search import SearchConfig, SearchResult, search, split_for_search, top1, train_winner

__all__ = [
    "LAYER_TYPES",
    "ArchDef",
    "Choice",
    "FBNetV2",
    "LayerDef",
    "SearchConfig",
    "SearchLayer",
    "SearchResult",
    "lenet_arch_def",
    "module_arch_def",
    "ofa_arch_def",
    "search",
    "split_for_search",
    "top1",
    "train_winner",
]
