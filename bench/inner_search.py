"""Two-level search against plain search: does refining every candidate with a differentiable engine pay?

For each engine, `--inner_search pit` (top-1 error vs MACs) and `--inner_search fbnetv2` (top-1 error vs latency on
the systolic array), `--seeds` msunas searches with the engine and as many without it (`--inner_search none`,
given `--none_factor` times the iterations so that it can be cut at the inner search's wall time). Compared on one
hypervolume per engine (normalised in a box fixed by every run's points): the final fronts at equal outer
evaluations, and the plain search's front after as much evaluation wall time as the inner search spent. Where the
inner search's time goes: the engine's training (`inner.seconds`) against the rest of each evaluation (batch-norm
recalibration, validation, fine-tuning, counting).

    python -m bench.inner_search [--seeds 3] [--n_doe 8 --iterations 2 --n_iter 4] [--inner_epochs 1]
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import msunas
from bench.report import image, machine, markdown_table, publish, result_path
from search.pareto import hypervolume, non_dominated, reference_point
from utils.cli import ArgumentParser, int_at_least, run_cli

ENGINES = {"pit": "macs", "fbnetv2": "latency"}
"""Each engine and the cost it is searched against (its regulariser)."""


def build_parser() -> ArgumentParser:
    """The benchmark's flags."""
    parser = ArgumentParser(prog="python -m bench.inner_search", description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", nargs="+", choices=list(ENGINES), default=list(ENGINES), help="inner engines")
    parser.add_argument("--seeds", type=int_at_least(1), default=3, help="searches per setting")
    parser.add_argument("--n_doe", type=int_at_least(4), default=8, help="initial design of every search")
    parser.add_argument("--iterations", type=int_at_least(1), default=2, help="iterations of the inner searches")
    parser.add_argument("--n_iter", type=int_at_least(1), default=4, help="candidates per iteration")
    parser.add_argument("--none_factor", type=int_at_least(1), default=3, help="iterations of plain search, times")
    parser.add_argument("--inner_epochs", type=int_at_least(1), default=1, help="epochs of each inner search")
    parser.add_argument("--inner_strength", type=float, default=2.0, help="weight of the inner regulariser")
    parser.add_argument("--inner_lr", type=float, default=0.1, help="Adam learning rate of the engines' choices")
    parser.add_argument("--inner_images", type=int_at_least(2), default=512, help="training images per inner epoch")
    parser.add_argument("--n_bn_cal", type=int_at_least(2), default=500, help="images to recalibrate batch norm on")
    parser.add_argument("--tag", default="", help="suffix of the results' names (inner_search_TAG), to keep runs apart")
    parser.add_argument("--weights", help="supernet weights (default: the embedded default, trained once and cached)")
    parser.add_argument("--resolution", type=int_at_least(8), default=32, help="input resolution of every search")
    return parser


def search(save: Path, seed: int, inner: str, cost: str, iterations: int, args: Any) -> dict[str, Any]:
    """One msunas search on the embedded default; its last `iter_{k}.stats` and its wall time."""
    argv = [
        "--save", str(save), "--seed", str(seed), "--sec_obj", cost, "--inner_search", inner,
        "--inner_epochs", str(args.inner_epochs), "--inner_strength", str(args.inner_strength),
        "--inner_lr", str(args.inner_lr),
        "--n_doe", str(args.n_doe), "--iterations", str(iterations), "--n_iter", str(args.n_iter),
        "--lr", str(args.resolution), "--ur", str(args.resolution), "--predictor", "gp", "--device", "cpu",
        *(["--supernet_path", args.weights] if args.weights else []),
        "--inner_images", str(args.inner_images), "--n_bn_cal", str(args.n_bn_cal),
    ]  # fmt: skip
    start = time.perf_counter()
    if run_cli(msunas.main, argv) != 0:
        raise RuntimeError(f"msunas {' '.join(argv)} failed")
    seconds = time.perf_counter() - start
    stats = json.loads((save / f"iter_{iterations}.stats").read_text())
    return {"seconds": seconds, "entries": [e["stats"] for e in stats["evaluations"]["entries"]]}


def points(entries: Sequence[dict[str, Any]], cost: str) -> np.ndarray:
    """`[n, 2]`: top-1 error (%) and `cost` of each successful evaluation, in evaluation order."""
    ok = [e for e in entries if e.get("status", "ok") == "ok"]
    return np.array([[100.0 - e["top1"], e[cost]] for e in ok], dtype=float).reshape(len(ok), 2)


def within_seconds(entries: Sequence[dict[str, Any]], seconds: float) -> list[dict[str, Any]]:
    """The first evaluations whose summed wall time stays within `seconds`."""
    spent = np.cumsum([e.get("wall_time_s", 0.0) for e in entries])
    return [e for e, t in zip(entries, spent, strict=True) if t <= seconds]


def time_split(runs: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Seconds per evaluation of an inner search: the engine's training and the rest of the evaluation."""
    entries = [e for run in runs for e in run["entries"] if "inner" in e]
    inner = statistics.mean(e["inner"]["seconds"] for e in entries)
    total = statistics.mean(e["wall_time_s"] for e in entries)
    return {"inner_s": inner, "rest_s": total - inner, "evaluation_s": total}


def compare(engine: str, runs: dict[str, list[dict[str, Any]]], n_evals: int) -> dict[str, Any]:
    """The hypervolumes of one engine's searches against the plain ones (median and range over seeds)."""
    cost = ENGINES[engine]
    every = np.vstack([points(run["entries"], cost) for group in runs.values() for run in group])
    ref, ideal = reference_point(every), every.min(axis=0)

    def hv(entries: Sequence[dict[str, Any]]) -> float:
        return hypervolume(points(entries, cost), ref, ideal) if entries else 0.0

    inner, plain = runs[engine], runs["none"]
    eval_seconds = [sum(e["wall_time_s"] for e in run["entries"]) for run in inner]
    in_time = [within_seconds(run["entries"], s) for run, s in zip(plain, eval_seconds, strict=True)]
    by_setting = {
        engine: [hv(run["entries"]) for run in inner],
        "none, equal evaluations": [hv(run["entries"][:n_evals]) for run in plain],
        "none, equal wall time": [hv(entries) for entries in in_time],
    }
    cheapest = {
        name: [float(points(run["entries"], cost)[:, 1].min()) for run in group] for name, group in runs.items()
    }
    return {
        "cost": cost,
        "reference_point": ref.tolist(),
        "ideal": ideal.tolist(),
        "hv": by_setting,
        "none_evaluations_in_equal_time": [len(entries) for entries in in_time],
        "cheapest_cost": cheapest,
        "time_split": time_split(inner),
        "search_seconds": {name: [run["seconds"] for run in group] for name, group in runs.items()},
    }


def plot(path: Path, runs: dict[str, dict[str, list[dict[str, Any]]]], n_evals: int) -> Path:
    """Each engine's fronts (first seed): inner search, plain search at equal evaluations."""
    fig = Figure(figsize=(5 * len(runs), 4))
    FigureCanvasAgg(fig)
    for i, (engine, group) in enumerate(runs.items(), start=1):
        ax = fig.add_subplot(1, len(runs), i)
        cost = ENGINES[engine]
        for name, entries in [(engine, group[engine][0]["entries"]), ("none", group["none"][0]["entries"][:n_evals])]:
            pts = points(entries, cost)
            front = pts[non_dominated(pts)]
            front = front[np.argsort(front[:, 1])]
            ax.scatter(pts[:, 1], pts[:, 0], s=8, alpha=0.4)
            ax.step(front[:, 1], front[:, 0], where="post", label=f"--inner_search {name}")
        ax.set_xlabel(f"{cost} (M)")
        ax.set_ylabel("top-1 error (%)")
        ax.set_title(f"{engine}: seed 0, {n_evals} evaluations each")
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def _shown(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.3f} [{min(values):.3f}, {max(values):.3f}]"


def section(results: dict[str, Any], png: Path) -> str:
    """The README section."""
    args = results["settings"]
    lines = [
        "## Two-level search against plain search (`python -m bench.inner_search`)",
        "",
        f"`python -m bench.inner_search --seeds {args['seeds']} --n_doe {args['n_doe']} --iterations "
        f"{args['iterations']} --n_iter {args['n_iter']} --inner_epochs {args['inner_epochs']} --inner_strength "
        f"{args['inner_strength']} --inner_lr {args['inner_lr']} --inner_images {args['inner_images']}"
        f"{' --tag ' + args['tag'] if args['tag'] else ''}`: digits "
        f"(embedded default supernet), {args['resolution']} px, CPU; "
        f"{results['n_evals']} evaluations per inner search, plain searches {args['none_factor']}x longer and cut. "
        "Hypervolume normalised in one box per engine (every run's points); median [min, max] over seeds.",
        "",
    ]
    rows = []
    for engine, r in results["engines"].items():
        split = r["time_split"]
        for name, values in r["hv"].items():
            rows.append([engine, r["cost"], name, _shown(values)])
        seconds = f"{split['inner_s']:.1f} / {split['rest_s']:.1f}"
        rows.append([engine, r["cost"], "none: evaluations in equal time", _shown(r["none_evaluations_in_equal_time"])])
        rows.append([engine, r["cost"], "seconds per evaluation: inner search / rest", seconds])
    lines += [markdown_table(["engine", "cost", "setting", "value"], rows), ""]
    budget = args["n_doe"] + args["iterations"] * args["none_factor"] * args["n_iter"]
    for engine, r in results["engines"].items():
        if min(r["none_evaluations_in_equal_time"]) == budget:
            lines += [
                f"{engine}: every plain search's whole budget ({budget} evaluations) took less evaluation time than "
                "the inner search, so its 'equal wall time' row is that budget's front (a longer plain search "
                "would only add to it).",
                "",
            ]
    lines.append(image("fronts", png))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every search, compare, publish."""
    args = build_parser().parse_args(argv)
    n_evals = args.n_doe + args.iterations * args.n_iter
    results: dict[str, Any] = {"settings": vars(args), "n_evals": n_evals, "machine": machine(), "engines": {}}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for engine in args.engines:
            cost = ENGINES[engine]
            runs[engine] = {
                name: [
                    search(Path(tmp) / f"{engine}-{name}-{seed}", seed, name, cost, iterations, args)
                    for seed in range(args.seeds)
                ]
                for name, iterations in [(engine, args.iterations), ("none", args.iterations * args.none_factor)]
            }
            results["engines"][engine] = compare(engine, runs[engine], n_evals)
    name = f"inner_search_{args.tag}" if args.tag else "inner_search"
    png = plot(result_path(f"{name}.png"), runs, n_evals)
    publish(name, results, section(results, png))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
