"""Small architecture definitions shared by the FBNetV2 tests."""

import pytest

from dnas.fbnetv2 import ArchDef, LayerDef


@pytest.fixture
def mixed_arch_def() -> ArchDef:
    """conv (kernels 3/5) → depthwise (3/5/7, stride 2) → conv + global pooling → linear → classifier."""
    return ArchDef(
        (3, 8, 8),
        (
            LayerDef("conv", 12, (0.25, 0.5, 1.0), (3, 5)),
            LayerDef("dwconv", kernels=(3, 5, 7), stride=2),
            LayerDef("conv", 16, (0.5, 1.0), (1, 3), avgpool=True),
            LayerDef("linear", 20, (0.5, 1.0)),
            LayerDef("linear", 10, act=False),
        ),
    )
