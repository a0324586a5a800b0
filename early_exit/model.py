"""The early-exit network: an OFA MobileNetV3 subnet cut after some of its elastic stages, with a head at each cut.

The backbone's modules are the extracted subnet's own (shared, not copied): training the early-exit network
trains the subnet. The final exit is the subnet's classifier path and is always present.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from early_exit.costs import backbone_profile
from early_exit.heads import DEFAULT_HEAD, ExitHead, HeadConfig, build_heads

if TYPE_CHECKING:
    from early_exit.policy import Epsilon, ExitPolicy

EXIT_STAGES = (0, 1, 2, 3)
"""The elastic stages of OFA MobileNetV3 after which an early exit may sit (the final exit follows stage 4)."""

N_STAGES = 5


@dataclass
class ExitOutputs:
    """Every exit's outputs on a batch, in depth order (the final classifier last).

    `logits[i]` is `[N, n_classes]`; `confidence[i]` is `[N]` in (0, 1) when the heads carry a confidence (the
    final exit's is the constant 1), else `confidence` is None.
    """

    logits: list[Tensor]
    confidence: list[Tensor] | None = None

    def __post_init__(self) -> None:
        if not self.logits:
            raise ValueError("ExitOutputs needs at least one exit")
        if self.confidence is not None and len(self.confidence) != len(self.logits):
            raise ValueError(f"{len(self.confidence)} confidences for {len(self.logits)} exits")

    @property
    def n_exits(self) -> int:
        """Number of exits, the final one included."""
        return len(self.logits)

    @property
    def n_samples(self) -> int:
        """Number of samples (the batch size)."""
        return self.logits[0].shape[0]

    def map(self, fn: Callable[[Tensor], Tensor]) -> ExitOutputs:
        """The outputs with `fn` applied to every tensor (e.g. indexing samples, moving to a device)."""
        confidence = None if self.confidence is None else [fn(c) for c in self.confidence]
        return ExitOutputs([fn(t) for t in self.logits], confidence)

    @staticmethod
    def cat(parts: Sequence[ExitOutputs]) -> ExitOutputs:
        """The outputs of several batches joined along the samples."""
        if not parts:
            raise ValueError("nothing to concatenate")
        logits = [torch.cat([p.logits[i] for p in parts]) for i in range(parts[0].n_exits)]
        confidences = [p.confidence for p in parts if p.confidence is not None]
        if not confidences:
            return ExitOutputs(logits)
        if len(confidences) != len(parts):
            raise ValueError("cannot join outputs with and without confidences")
        return ExitOutputs(logits, [torch.cat([c[i] for c in confidences]) for i in range(len(logits))])


class FinalExit(nn.Module):
    """The subnet's own classifier path (its modules, shared): final expand, global pool, feature mix, classifier.

    `forward` gives `(logits, confidence)` like an `ExitHead`; the confidence is the constant 1 (None without).
    """

    def __init__(self, subnet: nn.Module, confidence: bool) -> None:
        super().__init__()
        self.final_expand_layer = subnet.final_expand_layer
        self.global_avg_pool = subnet.global_avg_pool
        self.feature_mix_layer = subnet.feature_mix_layer
        self.classifier = subnet.classifier
        self.confidence = confidence

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Logits `[N, n_classes]` and the constant confidence `[N]` of 1 (None without) of the last features."""
        x = self.feature_mix_layer(self.global_avg_pool(self.final_expand_layer(x)))
        logits = self.classifier(x.flatten(1))
        ones = torch.ones(logits.shape[0], dtype=logits.dtype, device=logits.device) if self.confidence else None
        return logits, ones


class EarlyExitNet(nn.Module):
    """A backbone cut into `segments`, an `ExitHead` after each segment but the last, and the `final` exit.

    `segments[i]` runs from exit i - 1 (or the input) to exit i; `exit_stages[i]` is the elastic stage that exit i
    follows. `forward` gives every exit's `ExitOutputs`; `infer` stops computing for samples that have left. With
    `frozen_backbone` set, `train()` leaves the backbone (segments and final exit) in eval mode: heads trained on a
    frozen backbone must not move its batch-norm statistics, nor see its dropout.
    """

    frozen_backbone: bool = False

    def __init__(
        self, segments: Sequence[nn.Module], heads: Sequence[ExitHead], final: FinalExit, exit_stages: Sequence[int]
    ) -> None:
        super().__init__()
        if len(segments) != len(heads) + 1 or len(heads) != len(exit_stages):
            raise ValueError(f"{len(segments)} segments, {len(heads)} heads, {len(exit_stages)} exit stages")
        self.segments = nn.ModuleList(segments)
        self.heads = nn.ModuleList(heads)
        self.final = final
        self.exit_stages = tuple(exit_stages)
        self.confidence = final.confidence

    @property
    def n_exits(self) -> int:
        """Number of exits, the final one included."""
        return len(self.segments)

    def train(self, mode: bool = True) -> EarlyExitNet:
        """Training (or eval) mode, the backbone kept in eval mode while `frozen_backbone`."""
        super().train(mode)
        if mode and self.frozen_backbone:
            self.segments.eval()
            self.final.eval()
        return self

    def exits(self) -> list[nn.Module]:
        """Every exit's classifier in depth order: the heads, then the final exit."""
        return [*self.heads, self.final]

    def forward(self, x: Tensor) -> ExitOutputs:
        """Every exit's outputs on images `x`."""
        logits: list[Tensor] = []
        confidence: list[Tensor] = []
        for segment, exit_ in zip(self.segments, self.exits(), strict=True):
            x = segment(x)
            out, conf = exit_(x)
            logits.append(out)
            confidence.append(conf)
        return ExitOutputs(logits, confidence if self.confidence else None)

    @torch.no_grad()
    def infer(self, x: Tensor, policy: ExitPolicy, epsilon: Epsilon) -> tuple[Tensor, Tensor]:
        """Predictions `[N]` and the exit each sample left at `[N]` (long) under `policy` with thresholds `epsilon`.

        Only the samples still in go through each later segment and head, so an exit saves real compute. The
        result equals `policy.exit_index` on `forward`'s outputs. Call it in eval mode (batch norm in training
        mode would see the shrinking batches).
        """
        thresholds = policy.thresholds(epsilon, self.n_exits)
        index = torch.arange(x.shape[0], device=x.device)
        predictions = torch.zeros_like(index)
        exit_index = torch.zeros_like(index)
        seen: ExitOutputs | None = None
        for i, (segment, exit_) in enumerate(zip(self.segments, self.exits(), strict=True)):
            x = segment(x)
            out, conf = exit_(x)
            seen = _append(seen, out, conf)
            if i < len(thresholds):
                leave = policy.scores(seen)[-1] >= thresholds[i]
            else:
                leave = torch.ones_like(index, dtype=torch.bool)
            predictions[index[leave]] = out[leave].argmax(1)
            exit_index[index[leave]] = i
            stay = ~leave
            if not bool(stay.any()):
                break
            index, x, seen = index[stay], x[stay], seen.map(lambda t, keep=stay: t[keep])
        return predictions, exit_index

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """The subnet's parameters: every segment and the final exit."""
        return chain(self.segments.parameters(), self.final.parameters())

    def head_parameters(self) -> Iterator[nn.Parameter]:
        """The early-exit heads' parameters."""
        return self.heads.parameters()

    def exportable(self) -> ExportableExits:
        """A module sharing this network whose output is a plain tuple of tensors (for ONNX export)."""
        return ExportableExits(self)


class ExportableExits(nn.Module):
    """An `EarlyExitNet` whose `forward` returns every exit's logits, then (with confidence) every confidence."""

    def __init__(self, net: EarlyExitNet) -> None:
        super().__init__()
        self.net = net

    @property
    def output_names(self) -> list[str]:
        """Names of the outputs, in order: `logits_0`, ..., then `confidence_0`, ... when there are any."""
        names = [f"logits_{i}" for i in range(self.net.n_exits)]
        return names + ([f"confidence_{i}" for i in range(self.net.n_exits)] if self.net.confidence else [])

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """Every exit's logits, then every exit's confidence (with confidence), on images `x`."""
        out = self.net(x)
        return (*out.logits, *(out.confidence or []))


def _append(seen: ExitOutputs | None, logits: Tensor, confidence: Tensor | None) -> ExitOutputs:
    """`seen` with one more exit."""
    if seen is None:
        return ExitOutputs([logits], None if confidence is None else [confidence])
    more = None if seen.confidence is None or confidence is None else [*seen.confidence, confidence]
    return ExitOutputs([*seen.logits, logits], more)


def check_exit_stages(exit_stages: Sequence[int]) -> tuple[int, ...]:
    """`exit_stages` as a tuple after checking it is an ascending subset of `EXIT_STAGES`."""
    stages = tuple(int(s) for s in exit_stages)
    if any(s not in EXIT_STAGES for s in stages) or list(stages) != sorted(set(stages)):
        raise ValueError(f"exit stages must be an ascending subset of {EXIT_STAGES}, got {list(exit_stages)}")
    return stages


def build_early_exit_net(
    subnet: nn.Module,
    depths: Sequence[int],
    exit_stages: Sequence[int],
    n_classes: int,
    resolution: int,
    confidence: bool,
    head: HeadConfig = DEFAULT_HEAD,
    seed: int = 0,
) -> EarlyExitNet:
    """An `EarlyExitNet` on an extracted static OFA MobileNetV3 `subnet` (its modules shared, not copied).

    `depths` are the subnet's stage depths (`arch["d"]`); an exit follows each stage of `exit_stages`. Heads are
    sized for `resolution` (the max-pool rule of `build_heads`), initialised from `seed` (torch's global
    generator is left alone) and placed on the subnet's device.
    """
    stages = check_exit_stages(exit_stages)
    blocks = list(subnet.blocks)
    if len(depths) != N_STAGES or len(blocks) != 1 + sum(depths):
        raise ValueError(f"a subnet of {len(blocks)} blocks does not have stage depths {list(depths)}")
    ends = [1 + sum(depths[: s + 1]) for s in stages] + [len(blocks)]
    starts = [0, *ends[:-1]]
    segments = [nn.Sequential(*blocks[a:b]) for a, b in zip(starts, ends, strict=True)]
    segments[0] = nn.Sequential(subnet.first_conv, *segments[0])
    final = FinalExit(subnet, confidence)
    classes = [m for m in final.classifier.modules() if isinstance(m, nn.Linear)][-1].out_features
    if classes != n_classes:
        raise ValueError(f"the subnet's classifier has {classes} classes, not {n_classes}")
    shapes, macs = backbone_profile(segments, final, resolution)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        heads = build_heads(shapes, macs, n_classes, confidence, head)
    reference = next(subnet.parameters())
    heads = [h.to(device=reference.device, dtype=reference.dtype) for h in heads]
    return EarlyExitNet(segments, heads, final, stages)


@torch.no_grad()
def collect_outputs(net: EarlyExitNet, batches: Iterable[tuple[Tensor, Tensor]]) -> tuple[ExitOutputs, Tensor]:
    """Every exit's outputs and the labels over `batches` (such as `data.batches(splits, "valid", ...)`).

    Runs in eval mode (the mode is restored) and gathers everything on the CPU, ready for `policy.tune_epsilon`.
    """
    was_training = net.training
    net.eval()
    outputs: list[ExitOutputs] = []
    labels: list[Tensor] = []
    try:
        for x, y in batches:
            outputs.append(net(x).map(lambda t: t.detach().cpu()))
            labels.append(y.cpu())
    finally:
        net.train(was_training)
    return ExitOutputs.cat(outputs), torch.cat(labels)
