"""Flatness of a network's loss landscape (FlatNAS): how far its accuracy moves when its weights are perturbed.

`robustness = mean over sigmas s and draws m of |acc(w) - acc(w + s * w * eps_m)|`, with `eps_m ~ N(0, 1)` drawn
for every parameter element (multiplicative noise, as FlatNAS), accuracies in percent on one split (the validation
split in a search). Lower is flatter. Batch-norm statistics are buffers, not parameters: they stay as they are.

One pass over the split per sigma: each batch is read and resized once and pushed through the network and every
perturbed copy (`torch.func.functional_call` swaps the perturbed tensors in; on CUDA all M copies in one `vmap`
call), so a measurement costs `1 + n_sigmas * M` forward passes and `n_sigmas` reads of the split. The draws are
the same for every sigma (common random numbers: the numbers over sigma move smoothly) and are drawn on the CPU
from a generator seeded with `seed`, draw by draw in parameter order, so the same seed gives the same number on any
device. The M draws and the M perturbed copies of one sigma are held in memory (2 M copies of the parameters).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap

from data import DatasetSplits, batches
from utils.errors import UsageError

FLATNESS_HELP = {
    "sigma_min": "smallest relative weight-noise amplitude sigma of the flatness measure",
    "sigma_max": "largest sigma (sigmas from --sigma_min to --sigma_max in --sigma_step steps are averaged)",
    "sigma_step": "step between sigmas (needed when --sigma_max > --sigma_min)",
    "n_perturb": "weight perturbations drawn per sigma (M)",
}
"""The help of `FlatnessConfig`'s flags, for every command line that nests it."""


@dataclass(frozen=True)
class FlatnessConfig:
    """The perturbations of the flatness measure: sigmas from `sigma_min` to `sigma_max` by `sigma_step`, M draws.

    Defaults are upstream FlatNAS's (one sigma, 0.05; M = 20).
    """

    sigma_min: float = 0.05
    sigma_max: float = 0.05
    sigma_step: float = 0.0
    n_perturb: int = 20

    def checks(self) -> dict[str, bool]:
        """Each check of a value a user may get wrong, keyed by the message naming the flag."""
        return {
            "--sigma_min must be > 0": self.sigma_min > 0,
            "--sigma_max must be >= --sigma_min": self.sigma_max >= self.sigma_min,
            "--sigma_step must be > 0 when --sigma_max > --sigma_min": self.sigma_step > 0
            or self.sigma_max == self.sigma_min,
            "--n_perturb must be >= 1": self.n_perturb >= 1,
        }

    def validate(self) -> FlatnessConfig:
        """`self`, after every check passed (a `UsageError` with the first failure's message otherwise)."""
        failed = [message for message, ok in self.checks().items() if not ok]
        if failed:
            raise UsageError(failed[0])
        return self

    def sigmas(self) -> tuple[float, ...]:
        """The sigmas averaged: `sigma_min`, then steps of `sigma_step` up to `sigma_max` (both ends included)."""
        if self.sigma_max == self.sigma_min:
            return (self.sigma_min,)
        n = round((self.sigma_max - self.sigma_min) / self.sigma_step) + 1
        return tuple(round(self.sigma_min + i * self.sigma_step, 10) for i in range(n))


@dataclass(frozen=True)
class Flatness:
    """One flatness measurement: the clean top-1, the mean accuracy change per sigma and their mean."""

    top1: float
    sigmas: tuple[float, ...]
    per_sigma: tuple[float, ...]

    @property
    def robustness(self) -> float:
        """The mean over sigmas of the mean absolute top-1 change (percentage points): FlatNAS's `robustness`."""
        return sum(self.per_sigma) / len(self.per_sigma)

    def stats(self) -> dict[str, Any]:
        """The numbers `net.stats` records: `robustness`, the `sigma`s and the value at each."""
        return {"robustness": self.robustness, "sigma": list(self.sigmas), "robustness_per_sigma": list(self.per_sigma)}


def draw_noise(params: Sequence[torch.Tensor], n: int, seed: int) -> list[list[torch.Tensor]]:
    """`n` draws of standard normal noise shaped like `params`, on the CPU, from a generator seeded with `seed`."""
    generator = torch.Generator().manual_seed(seed)
    return [[torch.randn(p.shape, generator=generator) for p in params] for _ in range(n)]


def _correct(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Correct predictions per row of `[..., B, C]` logits (a tensor on their device, no synchronisation).

    A sample with a non-finite logit counts as wrong (a broken copy guesses nothing).
    """
    right = (logits.argmax(-1) == labels) & torch.isfinite(logits).all(-1)
    return right.sum(-1)


@torch.no_grad()
def measure_flatness(
    model: nn.Module,
    splits: DatasetSplits,
    split: str,
    resolution: int,
    cfg: FlatnessConfig,
    *,
    seed: int = 0,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    limit: int | None = None,
    vectorise: bool | None = None,
) -> Flatness:
    """The flatness of `model` (left unchanged, in eval mode) on `split` of `splits` at `resolution`.

    The perturbed copies of one sigma are built once and held (M copies of the parameters); each batch then goes
    through all of them, in one vectorised call (`torch.func.vmap`) when `vectorise`, else one after the other.
    `vectorise` None means on CUDA only, where it replaces M small launches by one large one (on a CPU the loop is
    faster). Non-finite logits of the clean network are a `FloatingPointError`, as for `training.evaluate.accuracy`.
    """
    cfg.validate()
    model.eval()
    device = torch.device(device)
    vectorise = device.type == "cuda" if vectorise is None else vectorise
    names = [name for name, _ in model.named_parameters()]
    params = [p.detach() for _, p in model.named_parameters()]
    buffers = dict(model.named_buffers())
    noise = [[e.to(device) for e in draw] for draw in draw_noise(params, cfg.n_perturb, seed)]

    def forward(weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(model, {**buffers, **weights}, (x,))

    sigmas = cfg.sigmas()
    clean = torch.zeros((), dtype=torch.int64, device=device)
    perturbed = torch.zeros(len(sigmas), cfg.n_perturb, dtype=torch.int64, device=device)
    total = 0
    for i, sigma in enumerate(sigmas):
        copies = [{n: p + sigma * p * e for n, p, e in zip(names, params, eps, strict=True)} for eps in noise]
        stacked = {n: torch.stack([c[n] for c in copies]) for n in names} if vectorise else {}
        for x, y in batches(splits, split, resolution, batch_size, train=False, device=device, limit=limit):
            if i == 0:
                logits = model(x)
                if not bool(torch.isfinite(logits).all()):
                    raise FloatingPointError(f"non-finite logits on the {split} split before any perturbation")
                clean += _correct(logits, y)
                total += int(y.numel())
            if vectorise:
                perturbed[i] += _correct(vmap(forward, in_dims=(0, None))(stacked, x), y)
            else:
                perturbed[i] += torch.stack([_correct(forward(c, x), y) for c in copies])
    top1 = 100.0 * int(clean) / max(total, 1)
    accuracies = 100.0 * perturbed.double().cpu() / max(total, 1)
    per_sigma = (accuracies - top1).abs().mean(dim=1)
    return Flatness(top1=top1, sigmas=sigmas, per_sigma=tuple(float(v) for v in per_sigma))
