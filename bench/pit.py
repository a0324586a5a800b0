"""PIT on ResNet-8: accuracy against parameters and MACs for a sweep of regulariser strengths.

Train a seed ResNet-8 briefly, then for each strength `s`: convert it with PIT, train with
`cross_entropy + s · cost / seed_cost` (so `s` weighs a whole network's cost against the task loss), export the
plain pruned network, fine-tune it briefly and measure its validation top-1 (the validation split is carved from
the training set; the test split is never used). The baseline at equal training is the seed trained further on
the same schedule as each PIT model (PIT epochs, then fine-tuning epochs at half the learning rate). Parameters
and MACs count conv / linear weights and biases, per image.

    python -m bench.pit [--dataset auto] [--limit 8000] [--strengths 0.03 0.1 0.3 1]
"""

from __future__ import annotations

import argparse
import copy
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.report import machine, markdown_table, publish
from data import DATASETS, DatasetSplits, batches, create_dataset, list_datasets
from data.fashion_mnist import DEFAULT_ROOT
from dnas.models import create_tiny_model
from dnas.pit import PIT
from hw import COST_MODELS, list_cost_models
from utils.cli import ArgumentParser, int_at_least, run_cli
from utils.device import resolve_device
from utils.seed import seed_everything

logger = logging.getLogger("bench.pit")
RESULTS = Path(__file__).resolve().parent / "results"


def run_epochs(
    model: nn.Module,
    splits: DatasetSplits,
    args: argparse.Namespace,
    epochs: int,
    optimizers: list[torch.optim.Optimizer],
    extra_loss: Callable[[], torch.Tensor] | None = None,
) -> None:
    """Train `model` on the first `args.limit` shuffled training images for `epochs` epochs."""
    generator = torch.Generator().manual_seed(args.seed)
    model.train()
    for _ in range(epochs):
        for x, y in batches(
            splits, "train", args.resolution, args.batch_size, train=True, generator=generator, limit=args.limit
        ):
            loss = F.cross_entropy(model(x.to(args.device)), y.to(args.device))
            if extra_loss is not None:
                loss = loss + extra_loss()
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            loss.backward()
            for opt in optimizers:
                opt.step()


@torch.no_grad()
def top1(model: nn.Module, splits: DatasetSplits, args: argparse.Namespace) -> float:
    """Validation top-1 in percent."""
    model.eval()
    correct = total = 0
    for x, y in batches(splits, "valid", args.resolution, 256, train=False):
        correct += (model(x.to(args.device)).argmax(1).cpu() == y).sum().item()
        total += len(y)
    return 100.0 * correct / total


def plot(path: Path, seed: dict[str, Any], rows: list[dict[str, Any]]) -> Path:
    """Validation top-1 against MACs and against parameters, seed model included."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "macs", "MACs per image"), (axes[1], "params", "parameters")):
        ax.plot([r[key] for r in rows], [r["top1"] for r in rows], "o-", label="PIT, exported + fine-tuned")
        for r in rows:
            ax.annotate(f"{r['strength']:g}", (r[key], r["top1"]), textcoords="offset points", xytext=(4, 4))
        ax.plot([seed[key]], [seed["top1"]], "k*", markersize=12, label="seed ResNet-8")
        ax.plot([seed[key]], [seed["top1_trained_as_long"]], "r*", markersize=12, label="seed, trained as long")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(label)
        ax.set_ylabel("validation top-1 (%)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m bench.pit", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dataset",
        default="auto",
        choices=["auto", *list_datasets()],
        help=f"auto: fashion_mnist when on disk, else digits. {DATASETS.describe()}",
    )
    parser.add_argument("--resolution", type=int_at_least(1), default=28)
    parser.add_argument("--limit", type=int_at_least(1), default=8000, help="training images used per epoch")
    parser.add_argument("--vld_size", type=int_at_least(1), default=2000)
    parser.add_argument("--batch_size", type=int_at_least(2), default=64)
    parser.add_argument("--seed_epochs", type=int_at_least(0), default=4)
    parser.add_argument("--pit_epochs", type=int_at_least(0), default=3)
    parser.add_argument("--ft_epochs", type=int_at_least(0), default=2)
    parser.add_argument("--strengths", type=float, nargs="+", default=[0.03, 0.1, 0.3, 1.0])
    parser.add_argument(
        "--regularizer", default="size", choices=list_cost_models(), help=f"hw cost model: {COST_MODELS.describe()}"
    )
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate of the weights")
    parser.add_argument("--mask_lr", type=float, default=1e-2, help="Adam learning rate of the masks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--name", default="pit", help="results name (bench/results/<name>.json, README section)")
    args = parser.parse_args(argv)
    args.device = resolve_device(args.device)
    if args.dataset == "auto":
        args.dataset = "fashion_mnist" if DEFAULT_ROOT.is_dir() else "digits"
    start = time.perf_counter()
    seed_everything(args.seed)
    splits = create_dataset(args.dataset, vld_size=args.vld_size, seed=args.seed)
    model = create_tiny_model("resnet8", n_classes=splits.n_classes, resolution=args.resolution).to(args.device)
    run_epochs(model, splits, args, args.seed_epochs, [torch.optim.Adam(model.parameters(), lr=args.lr)])
    reference = PIT(model, model.input_shape)
    seed_row = {"top1": top1(model, splits, args), "params": reference.get_size(), "macs": reference.get_macs()}
    longer = copy.deepcopy(model)  # the seed on the same schedule as each PIT model: the baseline at equal training
    run_epochs(longer, splits, args, args.pit_epochs, [torch.optim.Adam(longer.parameters(), lr=args.lr)])
    run_epochs(longer, splits, args, args.ft_epochs, [torch.optim.Adam(longer.parameters(), lr=args.lr / 2)])
    seed_row["top1_trained_as_long"] = top1(longer, splits, args)
    logger.info("seed: %s", seed_row)
    rows = []
    for strength in args.strengths:
        pit = PIT(model, model.input_shape, regularizer=args.regularizer).to(args.device)
        seed_cost = float(pit.get_regularization_loss().detach())
        optimizers = [
            torch.optim.Adam(pit.net_parameters(), lr=args.lr),
            torch.optim.Adam([p for p in pit.arch_parameters() if p.requires_grad], lr=args.mask_lr),
        ]
        run_epochs(
            pit,
            splits,
            args,
            args.pit_epochs,
            optimizers,
            lambda p=pit, s=strength, c=seed_cost: s * p.get_regularization_loss() / c,
        )
        exported = pit.arch_export()
        before = top1(exported, splits, args)
        run_epochs(exported, splits, args, args.ft_epochs, [torch.optim.Adam(exported.parameters(), lr=args.lr / 2)])
        row = {
            "strength": strength,
            "top1_before_ft": before,
            "top1": top1(exported, splits, args),
            "params": pit.get_size(),
            "macs": pit.get_macs(),
            "channels": [layer["out"] for layer in pit.arch_summary()["layers"]],
        }
        logger.info("strength %g: %s", strength, row)
        rows.append(row)
    results = {
        "machine": machine(),
        "config": {k: str(v) if k == "device" else v for k, v in vars(args).items()},
        "seed_model": seed_row,
        "rows": rows,
        "seconds": time.perf_counter() - start,
    }
    png = plot(RESULTS / f"{args.name}.png", seed_row, rows)
    command = "python -m bench.pit " + " ".join(argv if argv is not None else [])
    section = "\n\n".join(
        [
            "## PIT on ResNet-8 (`python -m bench.pit`)",
            f"`{command.strip()}`",
            f"{args.dataset}, {args.resolution} px (3 channels), {args.limit} training images per epoch, "
            f"{len(splits.valid)} validation images (carved from train), seed model trained {args.seed_epochs} "
            f"epochs; per strength: {args.pit_epochs} PIT epochs with loss `CE + s · {args.regularizer} / seed "
            f"{args.regularizer}`, export, {args.ft_epochs} fine-tuning epoch(s). Parameters and MACs: conv and "
            f"linear layers (weights + biases), per image. {results['seconds'] / 60:.1f} min on "
            f"{results['machine']['cpu_threads']} CPU thread(s), torch {results['machine']['torch']}.",
            markdown_table(
                ["model", "top-1 before FT (%)", "top-1 (%)", "params", "MACs", "params vs seed", "MACs vs seed"],
                [
                    [name, "-", f"{seed_row[key]:.1f}", seed_row["params"], seed_row["macs"], "1.00", "1.00"]
                    for name, key in [
                        ("seed ResNet-8", "top1"),
                        (f"seed ResNet-8 + {args.pit_epochs + args.ft_epochs} epochs", "top1_trained_as_long"),
                    ]
                ]
                + [
                    [
                        f"PIT s={r['strength']:g}",
                        f"{r['top1_before_ft']:.1f}",
                        f"{r['top1']:.1f}",
                        r["params"],
                        r["macs"],
                        f"{r['params'] / seed_row['params']:.2f}",
                        f"{r['macs'] / seed_row['macs']:.2f}",
                    ]
                    for r in rows
                ],
            ),
            "Output channels of the exported conv / linear layers (stem, three residual stacks with their "
            "shortcuts, classifier): " + "; ".join(f"s={r['strength']:g}: {r['channels']}" for r in rows) + ".",
            f"![top-1 against MACs and parameters]({png.relative_to(RESULTS.parent)})",
        ]
    )
    publish(args.name, results, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
