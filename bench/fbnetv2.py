"""FBNetV2 on a LeNet-style space: accuracy against exact systolic-array latency, per array size and strength.

For each array size and each strength `lambda`, search widths and kernels with loss
`CE + lambda · expected latency / maximal network's latency` (weights on 80 % of the training split, architecture
on 20 %), extract the arg-max network and train it on the whole training split with the same trainer, keeping its
best validation epoch. The baseline scales every width uniformly (largest kernels) and goes through the same
schedule (search epochs train only its weights). Latency: exact (ceil) cycles per image, conv / linear layers.
Validation top-1 selects; the test split is evaluated once per network, at the end.

    python -m bench.fbnetv2 [--arrays 8 32] [--strengths 0 0.1 0.3 1 3] [--widths 0.25 0.5 0.75 1]
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.report import machine, markdown_table, publish
from data import DATASETS, create_dataset, list_datasets
from dnas.fbnetv2 import FBNetV2, SearchConfig, lenet_arch_def, search
from hw import SystolicArray, systolic_latency
from utils.cli import ArgumentParser, int_at_least, run_cli

logger = logging.getLogger("bench.fbnetv2")
RESULTS = Path(__file__).resolve().parent / "results"


def plot(path: Path, arrays: list[int], rows: list[dict[str, Any]]) -> Path:
    """Validation top-1 against exact latency, one panel per array size."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(arrays), figsize=(5 * len(arrays), 4), squeeze=False)
    for ax, size in zip(axes[0], arrays, strict=True):
        for method, style in (("fbnetv2", "o"), ("uniform", "s--")):
            mine = sorted((r for r in rows if r["array"] == size and r["method"] == method), key=lambda r: r["latency"])
            ax.plot([r["latency"] for r in mine], [r["valid_top1"] for r in mine], style, label=method)
            for r in mine:
                ax.annotate(r["setting"], (r["latency"], r["valid_top1"]), textcoords="offset points", xytext=(4, 4))
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(f"exact latency on a {size}x{size} array (cycles per image)")
        ax.set_ylabel("validation top-1 (%)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def row(method: str, setting: str, size: int, result: Any, latency: int, reference: int) -> dict[str, Any]:
    """One network's numbers."""
    return {
        "method": method,
        "setting": setting,
        "array": size,
        "latency": latency,
        "latency_ratio": latency / reference,
        "params": result.params,
        "macs": result.macs,
        "valid_top1": result.valid_top1,
        "test_top1": result.test_top1,
        "widths": [layer["width"] for layer in result.summary["layers"]],
        "kernels": [layer["kernel"] for layer in result.summary["layers"][:2]],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m bench.fbnetv2", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="digits", choices=list_datasets(), help=f"dataset. {DATASETS.describe()}")
    parser.add_argument("--resolution", type=int_at_least(1), default=16)
    parser.add_argument("--arrays", type=int_at_least(1), nargs="+", default=[8, 32], help="square array sizes s1 = s2")
    parser.add_argument("--strengths", type=float, nargs="+", default=[0.0, 0.1, 0.3, 1.0, 3.0])
    parser.add_argument("--widths", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0], help="baseline")
    parser.add_argument("--epochs", type=int_at_least(0), default=15, help="search epochs")
    parser.add_argument("--final_epochs", type=int_at_least(0), default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="fbnetv2", help="results name (bench/results/<name>.json, README section)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    splits = create_dataset(args.dataset, seed=args.seed)
    arch_def = lenet_arch_def(splits.n_classes, (3, args.resolution, args.resolution))
    base = SearchConfig(epochs=args.epochs, final_epochs=args.final_epochs, resolution=args.resolution, seed=args.seed)
    rows = []
    for size in args.arrays:
        for strength in args.strengths:
            cfg = SearchConfig(**{**vars(base), "strength": strength})
            result = search(arch_def, splits, SystolicArray(size, size), cfg)
            rows.append(row("fbnetv2", f"λ={strength:g}", size, result, result.latency, result.reference_latency))
            logger.info("%s", rows[-1])
    for width in args.widths:
        result = search(arch_def.scaled(width), splits, SystolicArray(), base)
        for size in args.arrays:
            reference = FBNetV2(arch_def, SystolicArray(size, size)).reference_latency
            latency = systolic_latency(result.model, arch_def.input_shape, (size, size))
            rows.append(row("uniform", f"x{width:g}", size, result, latency, reference))
            logger.info("%s", rows[-1])
    results = {
        "machine": machine(),
        "config": vars(args),
        "rows": rows,
        "seconds": time.perf_counter() - start,
    }
    png = plot(RESULTS / f"{args.name}.png", args.arrays, rows)
    command = "python -m bench.fbnetv2 " + " ".join(argv if argv is not None else [])
    section = "\n\n".join(
        [
            "## FBNetV2 channel masking against systolic-array latency (`python -m bench.fbnetv2`)",
            f"`{command.strip()}`",
            f"{args.dataset}, {args.resolution} px, LeNet-style space (two convs of up to 32 / 64 channels with "
            f"kernels 3 or 5, linear layers of up to 120 / 84; widths 25/50/75/100 %). Each network: "
            f"{args.epochs} search epochs (weights SGD on 80 % of train, architecture Adam on 20 %), then "
            f"{args.final_epochs} epochs of the extracted network on all of train, best validation epoch kept. "
            "Latency: exact cycles per image on an s x s array, conv and linear layers; ratio to the maximal "
            f"network. {results['seconds'] / 60:.1f} min on {results['machine']['cpu_threads']} CPU thread(s), "
            f"torch {results['machine']['torch']}.",
            markdown_table(
                [
                    *("array", "network", "latency", "vs max", "params", "MACs"),
                    *("valid top-1", "test top-1", "widths", "kernels"),
                ],
                [
                    [
                        f"{r['array']}x{r['array']}",
                        f"{r['method']} {r['setting']}",
                        r["latency"],
                        f"{r['latency_ratio']:.2f}",
                        r["params"],
                        r["macs"],
                        f"{r['valid_top1']:.1f}",
                        f"{r['test_top1']:.1f}",
                        r["widths"],
                        r["kernels"],
                    ]
                    for r in sorted(rows, key=lambda r: (r["array"], r["latency"]))
                ],
            ),
            f"One validation image is {100 / len(splits.valid):.2f} points of top-1 and digits is easy, so "
            "accuracy differences of a point are noise; the latencies are exact. Widths: output channels of the "
            "two convs and three linear layers; kernels: of the two convs.",
            f"![validation top-1 against latency]({png.relative_to(RESULTS.parent)})",
        ]
    )
    publish(args.name, results, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
