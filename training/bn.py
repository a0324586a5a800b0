"""Batch-norm recalibration: re-estimate running statistics of an extracted subnet on training images."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


class _Moments:
    """Running per-channel sums of a batch-norm layer's inputs."""

    def __init__(self) -> None:
        self.count = 0
        self.total: torch.Tensor | float = 0.0
        self.total_sq: torch.Tensor | float = 0.0

    def __call__(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        x = inputs[0].detach().double()
        dims = [d for d in range(x.dim()) if d != 1]
        self.count += x.numel() // x.shape[1]
        self.total = self.total + x.sum(dim=dims)
        self.total_sq = self.total_sq + x.square().sum(dim=dims)


@torch.no_grad()
def recalibrate_bn(model: nn.Module, images: Iterable[torch.Tensor]) -> int:
    """Set every batch-norm layer's running statistics to the exact mean and (unbiased) variance of its inputs.

    The inputs are those seen while `images` flow through `model` with batch norm in training mode (each layer
    normalised by its batch statistics, as during training). Weights are untouched; the model is left in eval
    mode. Returns the number of images seen.
    """
    norms = [m for m in model.modules() if isinstance(m, _BN)]
    moments = [_Moments() for _ in norms]
    hooks = [m.register_forward_pre_hook(mom) for m, mom in zip(norms, moments, strict=True)]
    model.eval()
    for m in norms:
        m.train()
    seen = 0
    try:
        for x in images:
            model(x)
            seen += x.shape[0]
    finally:
        for hook in hooks:
            hook.remove()
        for m in norms:
            m.eval()
    for m, mom in zip(norms, moments, strict=True):
        if mom.count < 2:
            continue
        mean = mom.total / mom.count
        var = (mom.total_sq / mom.count - mean.square()) * mom.count / (mom.count - 1)
        m.running_mean.copy_(mean.to(m.running_mean.dtype))
        m.running_var.copy_(var.clamp_min(0).to(m.running_var.dtype))
    return seen
