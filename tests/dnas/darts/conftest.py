import math

import pytest
import torch


def _waves(n: int, seed: int, length: int = 16, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Two-channel sine waves whose frequency is the class, with noise: `(n, 2, length, 1)`."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(classes, (n,), generator=g)
    t = torch.arange(length, dtype=torch.float32)
    phase = 2 * math.pi * torch.rand(n, 1, generator=g)
    freq = (1.0 + y.float()).unsqueeze(1) * 2 * math.pi / length
    wave = torch.stack([torch.sin(freq * t + phase), torch.cos(freq * t + phase)], dim=1)
    x = wave + 0.3 * torch.randn(n, 2, length, generator=g)
    return x.unsqueeze(-1), y


@pytest.fixture
def waves():
    """`waves(n, seed)`: a small 1-D classification task in batches of 32."""

    def make(n: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        x, y = _waves(n, seed)
        return list(zip(x.split(32), y.split(32), strict=True))

    return make
