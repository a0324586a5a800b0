"""FBNetV2-style channel and kernel masking searched against a systolic-array latency model (see README.md).

`FBNetV2` searches chains (`ArchDef`); `FBNetV2Graph` any traceable network, residuals and squeeze-excitation kept.
"""

from dnas.fbnetv2.arch import ArchDef, LayerDef, lenet_arch_def
from dnas.fbnetv2.graph import ChoiceMasker, FBNetV2Graph
from dnas.fbnetv2.layers import LAYER_TYPES, Choice, SearchLayer
from dnas.fbnetv2.model import FBNetV2
from dnas.fbnetv2.search import SearchConfig, SearchResult, search, split_for_search, top1, train_winner

__all__ = [
    "LAYER_TYPES",
    "ArchDef",
    "Choice",
    "ChoiceMasker",
    "FBNetV2",
    "FBNetV2Graph",
    "LayerDef",
    "SearchConfig",
    "SearchLayer",
    "SearchResult",
    "lenet_arch_def",
    "search",
    "split_for_search",
    "top1",
    "train_winner",
]
