import dataclasses

import torch

from data import create_dataset
from search_space.ofa_mbv3 import OFAMobileNetV3Space
from supernets.evaluate import score_subnet
from supernets.ofa_mbv3 import SupernetConfig, build_supernet, extract_subnet
from training.bn import recalibrate_bn
from training.evaluate import accuracy, calibration_images


def test_score_is_extract_recalibrate_validate():
    torch.manual_seed(0)
    supernet = build_supernet(SupernetConfig()).eval()
    full = create_dataset("digits")
    splits = dataclasses.replace(full, valid=full.valid.subset(range(40)))
    arch = OFAMobileNetV3Space(lr=16, ur=16).smallest()
    subnet, score = score_subnet(supernet, arch, splits, n_bn_cal=32, batch_size=16, seed=2)
    manual = extract_subnet(supernet, arch)
    recalibrate_bn(manual, calibration_images(splits, 16, 32, batch_size=16, seed=2, device="cpu"))
    assert score.top1 == accuracy(manual, splits, "valid", 16, batch_size=16)
    assert all(torch.equal(v, manual.state_dict()[k]) for k, v in subnet.state_dict().items())
    assert min(score.extract_s, score.bn_s, score.valid_s) >= 0
