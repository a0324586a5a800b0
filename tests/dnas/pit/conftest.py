"""Toy networks shared by the PIT tests."""

import pytest
import torch
from torch import nn


class ToyResidual(nn.Module):
    """conv0 → [conv1 → conv2] + conv0 (residual) → conv3 (stride 2) → pool → fc."""

    def __init__(self) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn0 = nn.BatchNorm2d(8)
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.conv3 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        x0 = torch.relu(self.bn0(self.conv0(x)))
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x0)))))
        y = torch.relu(y + x0)
        return self.fc(self.pool(torch.relu(self.conv3(y))).flatten(1))


class ToyTCN(nn.Module):
    """Two 1-D convolutions (kernels 9 and 5), flatten, linear: input [N, 2, 16]."""

    def __init__(self) -> None:
        super().__init__()
        self.c0 = nn.Conv1d(2, 6, 9, padding=4)
        self.c1 = nn.Conv1d(6, 4, 5, padding=2)
        self.fc = nn.Linear(4 * 16, 3)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.c1(torch.relu(self.c0(x)))), 1))


class ToyConcat(nn.Module):
    """Two branches concatenated on channels, then a 1×1 convolution and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(3, 6, 1)
        self.mix = nn.Conv2d(10, 5, 1)
        self.fc = nn.Linear(5 * 4 * 4, 2)

    def forward(self, x):
        y = self.mix(torch.cat([torch.relu(self.a(x)), self.b(x)], dim=1))
        return self.fc(y.view(y.size(0), -1))


@pytest.fixture
def toys():
    """(model, input shape) pairs, seeded."""
    torch.manual_seed(0)
    return {"residual": (ToyResidual(), (3, 8, 8)), "tcn": (ToyTCN(), (2, 16)), "concat": (ToyConcat(), (3, 4, 4))}
