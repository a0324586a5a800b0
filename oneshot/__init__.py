"""One-shot NAS: the ProxylessNAS, FBNet, SPOS and Single-path NAS spaces, their weight-sharing supernet and LUTs.

`blocks` registers the candidate blocks, `spaces` the spaces' layouts (`OneShotSpec`, at CIFAR or ImageNet scale and
any width), `supernet` the supernet (single-path, softmax and Gumbel-softmax forward passes; extraction of a path's
standalone network), `lut` the exact per-candidate cost lookup tables. `search_space/oneshot.py` registers the spaces
for the surrogate-assisted loop (`msunas.py --search_space proxyless|fbnet|spos|singlepath[_imagenet]`).
"""

import search_space  # noqa: F401  (first: its modules import this package, which imports search_space.base)
from oneshot.blocks import (
    BLOCKS,
    SUPERKERNEL_CANDIDATES,
    ChannelShuffle,
    MBConv,
    ShuffleBlock,
    SuperKernelMBConv,
    channel_shuffle,
    create_block,
    is_superkernel,
    list_blocks,
    skip_block,
)
from oneshot.lut import ALL_METRICS, HC_METRICS, LUT_METRICS, PEAK_METRIC, LookupTable, lookup_table
from oneshot.spaces import (
    ONESHOT_SPACES,
    SCALES,
    LayerSpec,
    OneShotSpec,
    create_oneshot_spec,
    list_oneshot_spaces,
    scaled,
)
from oneshot.supernet import (
    FORWARD_MODES,
    ChoiceLayer,
    OneShotNet,
    OneShotSupernet,
    build_network,
    build_stem,
    build_tail,
    gumbel_noise,
)

__all__ = [
    "ALL_METRICS",
    "BLOCKS",
    "FORWARD_MODES",
    "HC_METRICS",
    "LUT_METRICS",
    "ONESHOT_SPACES",
    "PEAK_METRIC",
    "SCALES",
    "SUPERKERNEL_CANDIDATES",
    "ChannelShuffle",
    "ChoiceLayer",
    "LayerSpec",
    "LookupTable",
    "MBConv",
    "OneShotNet",
    "OneShotSpec",
    "OneShotSupernet",
    "ShuffleBlock",
    "SuperKernelMBConv",
    "build_network",
    "build_stem",
    "build_tail",
    "channel_shuffle",
    "create_block",
    "create_oneshot_spec",
    "gumbel_noise",
    "is_superkernel",
    "list_blocks",
    "list_oneshot_spaces",
    "lookup_table",
    "scaled",
    "skip_block",
]
