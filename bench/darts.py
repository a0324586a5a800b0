"""DARTS: accuracy, parameters and MACs of the found networks with no resource penalty, `Memory` and `Compute`,
and search time, first order against unrolled, on a 1-D sensor task and on digits (2-D).

The 1-D task is generated here: three-channel series of 64 steps whose class is set by the base frequency and by
the phase relation between the channels (in step, quarter, opposite), with random amplitude, global phase, a
random drift and noise. Each search trains weights on the training split and alphas on the validation split and
selects its genotype on validation; the found network is then trained from scratch on the training split and
measured once on the test split, which neither the search nor the selection sees.

    python -m bench.darts [--epochs 5] [--final_epochs 8] [--modes none Memory Compute] [--unrolled_modes none]
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.report import machine, markdown_table, publish
from data import batches, create_dataset
from dnas.darts import DartsSearchConfig, measure, optimization_modes, search
from dnas.darts.train_cnn_search import evaluate
from utils.cli import ArgumentParser, int_at_least, run_cli
from utils.seed import seed_everything

logger = logging.getLogger("bench.darts")
Batch = tuple[Tensor, Tensor]


class Reiterable:
    """Batches that can be iterated once per epoch: `make()` gives a fresh iterator each time."""

    def __init__(self, make: Callable[[], Iterator[Batch]]) -> None:
        self.make = make

    def __iter__(self) -> Iterator[Batch]:
        return self.make()


def tensor_batches(x: Tensor, y: Tensor, batch_size: int, generator: torch.Generator | None) -> Reiterable:
    """Shuffled (with `generator`) or ordered (without) batches of in-memory tensors."""

    def make() -> Iterator[Batch]:
        order = torch.randperm(len(y), generator=generator) if generator is not None else torch.arange(len(y))
        return iter([(x[i], y[i]) for i in order.split(batch_size) if len(i) > 1])

    return Reiterable(make)


def sensor_task(n: int, seed: int, length: int = 64, channels: int = 3) -> tuple[Tensor, Tensor]:
    """`(n, channels, length, 1)` series: 6 classes = 2 base frequencies x 3 inter-channel phase relations."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(6, (n,), generator=g)
    t = torch.arange(length, dtype=torch.float32)
    freq = (2.0 + 1.5 * (y // 3).float() + 0.3 * torch.randn(n, generator=g)) * 2 * math.pi / length
    lag = (y % 3).float() * math.pi / 2  # 0, pi/2, pi between consecutive channels
    phase = 2 * math.pi * torch.rand(n, generator=g)
    shifts = phase[:, None] + lag[:, None] * torch.arange(channels)[None, :]
    amplitude = 0.5 + torch.rand(n, channels, 1, generator=g)
    wave = amplitude * torch.sin(freq[:, None, None] * t[None, None, :] + shifts[:, :, None])
    drift = torch.cumsum(0.05 * torch.randn(n, channels, length, generator=g), dim=-1)
    x = wave + drift + 0.6 * torch.randn(n, channels, length, generator=g)
    return x.unsqueeze(-1), y


def sensor_splits(args: argparse.Namespace) -> dict[str, Reiterable]:
    """Train / validation / test loaders of the 1-D task (independent draws)."""
    g = torch.Generator().manual_seed(args.seed)
    sizes = {"train": args.n_train, "valid": args.n_valid, "test": args.n_test}
    data = {name: sensor_task(n, args.seed + i) for i, (name, n) in enumerate(sizes.items())}
    return {
        name: tensor_batches(x, y, args.batch_size, g if name == "train" else None) for name, (x, y) in data.items()
    }


def digits_splits(args: argparse.Namespace) -> dict[str, Reiterable]:
    """digits at 8x8: the first `n_train` shuffled training images, validation (carved from train), test."""
    splits = create_dataset("digits", seed=args.seed)
    g = torch.Generator().manual_seed(args.seed)
    return {
        name: Reiterable(
            lambda name=name: batches(
                splits,
                name,
                8,
                args.batch_size,
                train=name == "train",
                generator=g,
                limit=args.n_train if name == "train" else None,
            )  # fmt: skip
        )
        for name in ("train", "valid", "test")
    }


TASKS: dict[str, tuple[Callable[[argparse.Namespace], dict[str, Reiterable]], dict[str, Any]]] = {
    "sensor-1d": (sensor_splits, {"num_classes": 6, "in_channels": 3}),
    "digits-2d": (digits_splits, {"num_classes": 10, "in_channels": 3}),
}


def train_final(model: nn.Module, loaders: dict[str, Reiterable], args: argparse.Namespace) -> dict[str, float]:
    """Train the found network from scratch (SGD, cosine); validation and test top-1 of the last epoch."""
    optimizer = torch.optim.SGD(model.parameters(), lr=args.final_lr, momentum=0.9, weight_decay=3e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.final_epochs)
    for _ in range(args.final_epochs):
        model.train()
        for x, y in loaders["train"]:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
        schedule.step()
    return {"valid_top1": evaluate(model, loaders["valid"], torch.device("cpu"))[1],
            "test_top1": evaluate(model, loaders["test"], torch.device("cpu"))[1]}  # fmt: skip


def run(task: str, mode: str, unrolled: bool, args: argparse.Namespace) -> dict[str, Any]:
    """One search and the evaluation of its network."""
    make_loaders, settings = TASKS[task]
    seed_everything(args.seed)
    loaders = make_loaders(args)
    config = DartsSearchConfig(
        **settings,
        nas_init_channels=args.channels,
        nas_layers=args.layers,
        nas_nodes_per_layer=args.nodes,
        nas_multiplier=args.nodes,
        nas_stem_multiplier=2,
        nas_budget=args.epochs,
        nas_optimization_mode=mode,
        resource_weight=args.resource_weight,
        unrolled=unrolled,
        lr=args.lr,
        arch_learning_rate=args.arch_lr,
        seed=args.seed,
        device="cpu",
        progress=False,
    )
    result = search(config, loaders["train"], loaders["valid"])
    x, _ = next(iter(loaders["train"]))
    cost = measure(result.model, tuple(x.shape[1:]))
    seed_everything(args.seed)
    scores = train_final(result.model, loaders, args)
    row = {
        "task": task,
        "mode": mode,
        "unrolled": unrolled,
        "search_seconds": result.seconds,
        "best_epoch": result.best_epoch,
        "search_valid_top1": result.history[result.best_epoch]["valid_top1"],
        **scores,
        "params": int(cost.params),
        "macs": int(cost.macs),
        "genotype": result.genotype._asdict(),
        "config": asdict(config),
    }
    logger.info("%s %s unrolled=%s: %s", task, mode, unrolled, {k: v for k, v in row.items() if k != "config"})
    return row


def ratio(row: dict[str, Any], reference: dict[str, Any] | None, key: str) -> str:
    """`row[key]` relative to the reference row's, or `-` without one."""
    return f"{row[key] / reference[key]:.2f}" if reference else "-"


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m bench.darts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["none", "Memory", "Compute"],
        choices=optimization_modes(),
        help="nas_optimization_mode: none, Memory (params), Compute (macs) or an hw cost model",
    )
    parser.add_argument("--unrolled_modes", nargs="*", default=["none"], help="also searched unrolled")
    parser.add_argument("--epochs", type=int_at_least(1), default=5, help="search epochs (nas_budget)")
    parser.add_argument("--final_epochs", type=int_at_least(1), default=8)
    parser.add_argument("--channels", type=int_at_least(1), default=8)
    parser.add_argument("--layers", type=int_at_least(1), default=3)
    parser.add_argument("--nodes", type=int_at_least(1), default=2)
    parser.add_argument("--resource_weight", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--arch_lr", type=float, default=3e-3)
    parser.add_argument("--final_lr", type=float, default=0.05)
    parser.add_argument("--batch_size", type=int_at_least(2), default=64)
    parser.add_argument("--n_train", type=int_at_least(1), default=600, help="training samples (both tasks)")
    parser.add_argument("--n_valid", type=int_at_least(1), default=300, help="sensor-1d validation samples")
    parser.add_argument("--n_test", type=int_at_least(1), default=400, help="sensor-1d test samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="darts", help="results name (bench/results/<name>.json, README section)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = [
        run(task, mode, unrolled, args)
        for task in args.tasks
        for mode in args.modes
        for unrolled in ([False, True] if mode in args.unrolled_modes else [False])
    ]
    reference = {r["task"]: r for r in rows if r["mode"] == "none" and not r["unrolled"]}
    results = {"machine": machine(), "config": vars(args), "rows": rows, "seconds": time.perf_counter() - start}
    command = "python -m bench.darts " + " ".join(argv if argv is not None else [])
    section = "\n\n".join(
        [
            "## DARTS cell search (`python -m bench.darts`)",
            f"`{command.strip()}`",
            f"Search: {args.layers} cells of {args.nodes} nodes, {args.channels} initial channels, {args.epochs} "
            f"epochs (weights on train, alphas on validation, genotype selected on validation); resource penalty "
            f"`{args.resource_weight:g} · expected cost / expected cost at uniform alphas`. The found network is "
            f"trained from scratch for {args.final_epochs} epochs on train; top-1 on the test split, seen once. "
            f"sensor-1d: generated 3-channel series of 64 steps, 6 classes (frequency x inter-channel phase), "
            f"{args.n_train}/{args.n_valid}/{args.n_test} train/valid/test; digits-2d: 8x8 digits, {args.n_train} "
            f"training images per epoch, the dataset's validation and test splits. Parameters: all; MACs: conv and "
            f"linear layers plus pooling taps, per sample. "
            f"{results['seconds'] / 60:.1f} min on {results['machine']['cpu_threads']} CPU thread(s), "
            f"torch {results['machine']['torch']}.",
            markdown_table(
                [
                    "task",
                    "penalty",
                    "search",
                    "search s",
                    "valid top-1 (%)",
                    "test top-1 (%)",
                    "params",
                    "MACs",
                    "params vs none",
                    "MACs vs none",
                ],  # fmt: skip
                [
                    [
                        r["task"],
                        r["mode"],
                        "unrolled" if r["unrolled"] else "first order",
                        f"{r['search_seconds']:.0f}",
                        f"{r['valid_top1']:.1f}",
                        f"{r['test_top1']:.1f}",
                        r["params"],
                        r["macs"],
                        *(ratio(r, reference.get(r["task"]), k) for k in ("params", "macs")),
                    ]
                    for r in rows
                ],
            ),
            "Ratios are to the same task's first-order search without penalty; one seed, so differences of a few "
            "points of top-1 are within run-to-run noise. Genotypes and per-epoch histories are in "
            f"`bench/results/{args.name}.json`.",
        ]
    )
    publish(args.name, results, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
