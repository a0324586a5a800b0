"""Exit heads (NACHOS's design): a small conv-BN-ReLU stack, global average pooling and one linear layer.

A head whose exit would cost at least as many MACs as the next exit gets a max-pool in front (`build_heads`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from early_exit.costs import Shape, forward_macs


@dataclass(frozen=True)
class HeadConfig:
    """The conv stack of every early-exit head: the output widths of its conv-BN-ReLU blocks and their kernel."""

    channels: tuple[int, ...] = (32, 64, 128)
    kernel_size: int = 3


DEFAULT_HEAD = HeadConfig()
"""NACHOS's widths: three 3 × 3 conv-BN-ReLU blocks of 32, 64 and 128 channels."""


class ExitHead(nn.Module):
    """An early exit's classifier: optional max-pool, conv-BN-ReLU blocks, global average pool, linear layer.

    `forward` gives `(logits [N, n_classes], confidence [N] or None)`. With `confidence` the linear layer has one
    more output, whose sigmoid is the head's confidence that its prediction is right (NACHOS). `pool` > 1 puts
    a `pool` × `pool` max-pool of stride `pool` in front.
    """

    def __init__(
        self, in_channels: int, n_classes: int, confidence: bool, config: HeadConfig = DEFAULT_HEAD, pool: int = 1
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.MaxPool2d(pool, pool)] if pool > 1 else []
        width = in_channels
        for out in config.channels:
            k = config.kernel_size
            layers += [nn.Conv2d(width, out, k, padding=k // 2, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            width = out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.linear = nn.Linear(width, n_classes + int(confidence))
        self.n_classes = n_classes
        self.confidence = confidence
        self.pool = pool

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Logits `[N, n_classes]` and confidence `[N]` (None without) of features `x`."""
        out = self.linear(self.features(x))
        if not self.confidence:
            return out, None
        return out[:, : self.n_classes], torch.sigmoid(out[:, self.n_classes])


def build_heads(
    feature_shapes: Sequence[Shape],
    backbone_macs: Sequence[int],
    n_classes: int,
    confidence: bool,
    config: HeadConfig = DEFAULT_HEAD,
) -> list[ExitHead]:
    """One head per early exit, for features of `feature_shapes` (per sample, `[C, H, W]`).

    `backbone_macs[i]` is the backbone's MACs from the input to exit i, with one more entry, the whole
    single-exit network's. The max-pool rule, applied from the last early exit to the first: exit i costs
    `backbone_macs[i] + head_macs[i]`, the next exit `backbone_macs[i + 1] + head_macs[i + 1]` (0 head MACs for
    the final exit). Pool sizes 1, 2, 4, ... are tried in turn and the first whose exit costs strictly less than
    the next is kept; the pool never exceeds the feature map's smaller side, so when even that one is not cheaper
    the exit keeps the largest pool that fits.
    """
    if len(backbone_macs) != len(feature_shapes) + 1:
        raise ValueError(f"{len(backbone_macs)} backbone MAC counts for {len(feature_shapes)} early exits (need +1)")
    heads: list[ExitHead] = []
    next_cost = backbone_macs[-1]
    for shape, macs in reversed(list(zip(feature_shapes, backbone_macs, strict=False))):
        pool = 1
        while True:
            head = ExitHead(shape[0], n_classes, confidence, config, pool)
            cost = macs + forward_macs(head, shape)[0]
            if cost < next_cost or 2 * pool > min(shape[1:]):
                break
            pool *= 2
        heads.append(head)
        next_cost = cost
    return heads[::-1]
