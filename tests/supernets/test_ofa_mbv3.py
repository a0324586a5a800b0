import numpy as np
import torch

from search_space.ofa_mbv3 import OFAMobileNetV3Space
from supernets.ofa_mbv3 import SupernetConfig, activate, build_supernet, extract_subnet

SPACE = OFAMobileNetV3Space(lr=16, ur=16)


def test_config_names_follow_ofa():
    assert SupernetConfig().name == "ofa_mbv3_d234_e346_k357_w1.0"
    assert SupernetConfig(width_mult=1.2).name == "ofa_mbv3_d234_e346_k357_w1.2"


def test_extracted_subnet_computes_what_the_active_supernet_computes():
    torch.manual_seed(0)
    net = build_supernet(SupernetConfig(n_classes=7)).eval()
    x = torch.randn(2, 3, 16, 16)
    for arch in [SPACE.smallest(), SPACE.largest(), *SPACE.sample(3, np.random.default_rng(0))]:
        sub = extract_subnet(net, arch).eval()
        activate(net, arch)
        with torch.no_grad():
            expected, got = net(x), sub(x)
        assert got.shape == (2, 7)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
        assert len(sub.blocks) == 1 + sum(arch["d"])


def test_extracted_kernels_and_widths_follow_the_architecture():
    net = build_supernet(SupernetConfig())
    arch = SPACE.sample(1, np.random.default_rng(1))[0]
    sub = extract_subnet(net, arch)
    used = [i for s, d in enumerate(arch["d"]) for i in range(s * 4, s * 4 + d)]
    for block, layer in zip(sub.blocks[1:], used, strict=True):
        assert block.conv.depth_conv.conv.kernel_size == (arch["ks"][layer], arch["ks"][layer])
        assert block.conv.expand_ratio == arch["e"][layer]
