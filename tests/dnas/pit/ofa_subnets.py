"""Real OFA MobileNetV3 subnets for the engine tests, and the independent counters their exports are checked with."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from search_space import create_search_space

SPACE = create_search_space("ofa_mbv3").unrestricted()
COUNTED = (nn.Conv1d, nn.Conv2d, nn.Linear)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One torch thread for a test module (autouse where imported): many small convolutions run faster on one
    thread, and on a busy machine a second one stalls them by a hundredfold."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sampled_archs() -> list[dict]:
    """Two sampled archs at 32 and 40 px: stages of depth 2 and 4, expansion 6, kernels 3, 5 and 7 among them."""
    archs = SPACE.sample(2, np.random.default_rng(0))
    archs = [{**arch, "r": r} for arch, r in zip(archs, (32, 40), strict=True)]
    depths = {d for arch in archs for d in arch["d"]}
    assert {2, 4} <= depths and 6 in archs[0]["e"] and {3, 5, 7} <= set(archs[0]["ks"])
    return archs


def build(arch: dict, seed: int = 0) -> nn.Module:
    """The subnet of `arch` with 10 classes, seeded weights and non-trivial batch-norm statistics, in eval mode."""
    torch.manual_seed(seed)
    net = SPACE.build_network(arch, n_classes=10)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    return net.eval()


def input_shape(arch: dict) -> tuple[int, int, int]:
    """(3, r, r)."""
    return 3, arch["r"], arch["r"]


def flop_macs(model: nn.Module, shape: tuple[int, ...]) -> int:
    """MACs per sample as `FlopCounterMode` counts them (convolutions and matrix products), FLOPs / 2."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(torch.zeros(1, *shape))
    return counter.get_total_flops() // 2


def layer_params(model: nn.Module) -> int:
    """Weights and biases of the conv / linear layers."""
    return sum(p.numel() for m in model.modules() if isinstance(m, COUNTED) for p in m.parameters())


def stage_blocks(net: nn.Module) -> list[list[int]]:
    """Block indices per stage (block 0, the first block, is no stage's): a stage starts at a block without shortcut."""
    stages: list[list[int]] = []
    for i, block in enumerate(net.blocks[1:], start=1):
        if block.shortcut is None:
            stages.append([])
        stages[-1].append(i)
    return stages
