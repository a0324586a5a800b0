"""Supernet throughput and the cost of evaluating one subnet.

1. Training images/s of the sandwich-rule supernet step against a bare PyTorch loop training the largest subnet
   (extracted, static) on the same batches, in the same run: the ratio is what the elastic supernet costs.
2. The time split of evaluating one subnet: extraction with inherited weights, batch-norm recalibration,
   validation.

    python -m bench.supernet [--steps 10] [--device auto]
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bench.report import machine, markdown_table, publish
from data import batches, create_dataset
from search_space.ofa_mbv3 import OFAMobileNetV3Space
from supernets.checkpoint import load_supernet_weights
from supernets.default import default_weights_path
from supernets.evaluate import score_subnet
from supernets.ofa_mbv3 import build_supernet, extract_subnet
from supernets.train import TrainConfig, sandwich_step
from training.evaluate import accuracy
from utils.cli import ArgumentParser, int_at_least, run_cli
from utils.device import resolve_device
from utils.errors import UsageError


def _timed_steps(step, data: list[tuple[torch.Tensor, torch.Tensor]], device: torch.device) -> float:
    """Seconds per step of `step(x, y)` over `data` after one warm-up step."""
    step(*data[0])
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for x, y in data[1:]:
        step(x, y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / (len(data) - 1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m bench.supernet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int_at_least(1), default=10, help="timed training steps")
    parser.add_argument("--batch_size", type=int_at_least(2), default=64)
    parser.add_argument("--resolution", type=int_at_least(8), default=32)
    parser.add_argument("--subnets", type=int_at_least(2), default=5, help="subnets timed for the evaluation split")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--weights", help="trained supernet for the evaluation part (default: the cached default supernet, if trained)"
    )
    args = parser.parse_args(argv)
    trained = Path(args.weights) if args.weights else default_weights_path()
    if args.weights and not trained.is_file():
        raise UsageError(f"--weights {trained} not found (train a supernet with python -m supernets.train)")
    device = resolve_device(args.device)
    cfg = TrainConfig(resolution=args.resolution)
    splits = create_dataset(cfg.dataset, seed=0)
    space = OFAMobileNetV3Space(lr=args.resolution, ur=args.resolution)
    generator = torch.Generator().manual_seed(0)
    data = [
        (x.to(device).contiguous(memory_format=torch.channels_last), y.to(device))
        for x, y in batches(splits, "train", args.resolution, args.batch_size, train=True, generator=generator)
    ][: args.steps + 1]
    torch.manual_seed(0)
    net = build_supernet(cfg.supernet_config(splits.n_classes)).to(device, memory_format=torch.channels_last).train()
    rng = np.random.default_rng(0)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum, nesterov=True)

    def supernet_step(x: torch.Tensor, y: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        archs = [space.largest(), space.smallest(), *space.sample(cfg.n_random, rng)]
        sandwich_step(net, archs, x, y, label_smoothing=cfg.optim.label_smoothing, kd_ratio=cfg.kd_ratio)
        opt.step()

    plain = extract_subnet(net, space.largest()).to(device, memory_format=torch.channels_last).train()
    plain_opt = torch.optim.SGD(plain.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum, nesterov=True)

    def plain_step(x: torch.Tensor, y: torch.Tensor) -> None:
        plain_opt.zero_grad(set_to_none=True)
        F.cross_entropy(plain(x), y, label_smoothing=cfg.optim.label_smoothing).backward()
        plain_opt.step()

    supernet_s = _timed_steps(supernet_step, data, device)
    plain_s = _timed_steps(plain_step, data, device)
    n_sub = 2 + cfg.n_random
    if trained.is_file():
        load_supernet_weights(net, trained)
    net.eval()
    splits_s, without_bn = [], []
    for arch in [space.smallest(), space.largest(), *space.sample(args.subnets - 2, np.random.default_rng(1))]:
        without_bn.append(accuracy(extract_subnet(net, arch), splits, "valid", arch["r"], device=device))
        _, score = score_subnet(net, arch, splits, n_bn_cal=cfg.n_bn_cal, device=device)
        splits_s.append(score)
    extract = statistics.median(s.extract_s for s in splits_s)
    bn = statistics.median(s.bn_s for s in splits_s)
    valid = statistics.median(s.valid_s for s in splits_s)
    results = {
        "machine": machine(),
        "device": str(device),
        "batch_size": args.batch_size,
        "resolution": args.resolution,
        "steps": args.steps,
        "supernet_images_per_s": args.batch_size / supernet_s,
        "plain_largest_images_per_s": args.batch_size / plain_s,
        "ratio_images_per_s": plain_s / supernet_s,
        "subnets_per_supernet_step": n_sub,
        "ratio_per_subnet_pass": plain_s / (supernet_s / n_sub),
        "evaluate_one_subnet_s": {"extract": extract, "bn_recalibration": bn, "validation": valid},
        "n_bn_cal": cfg.n_bn_cal,
        "weights": str(trained) if trained.is_file() else None,
        "top1_without_bn_recalibration": without_bn,
        "top1_with_bn_recalibration": [sc.top1 for sc in splits_s],
        "valid_images": len(splits.valid),
    }
    total = extract + bn + valid
    section = "\n\n".join(
        [
            "## Supernet training throughput and subnet evaluation (`python -m bench.supernet`)",
            f"digits, {args.resolution} px, batch {args.batch_size}, {args.steps} timed steps, device `{device}`, "
            f"torch {results['machine']['torch']}, {results['machine']['cpu_threads']} threads.",
            markdown_table(
                ["loop", "images/s", "ratio to bare loop"],
                [
                    ["bare PyTorch, largest subnet (static)", f"{args.batch_size / plain_s:.1f}", "1.00"],
                    [
                        f"supernet sandwich step ({n_sub} subnets + distillation)",
                        f"{args.batch_size / supernet_s:.1f}",
                        f"{plain_s / supernet_s:.2f}",
                    ],
                    [
                        "supernet, per subnet pass",
                        f"{n_sub * args.batch_size / supernet_s:.1f}",
                        f"{plain_s / (supernet_s / n_sub):.2f}",
                    ],
                ],
            ),
            f"Evaluating one subnet (median of {len(splits_s)}; {cfg.n_bn_cal} images for batch-norm recalibration, "
            f"{len(splits.valid)} validation images):",
            markdown_table(
                ["phase", "seconds", "share"],
                [
                    [name, f"{t:.3f}", f"{100 * t / total:.0f}%"]
                    for name, t in [("extract subnet", extract), ("BN recalibration", bn), ("validation", valid)]
                ],
            ),
            f"Validation top-1 of the same subnets of `{trained.name if trained.is_file() else 'a fresh supernet'}`, "
            "with the running statistics inherited from the supernet → after recalibration: "
            + ", ".join(f"{a:.1f} → {b.top1:.1f}" for a, b in zip(without_bn, splits_s, strict=True))
            + ".",
        ]
    )
    publish("supernet", results, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
