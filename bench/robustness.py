"""FlatNAS against plain accuracy search on Fashion-MNIST, and what one flatness measurement costs.

1. Per seed, two msunas searches over one supernet with the same true evaluations: `--first_obj top1` and
   `--first_obj top1_robust --eval_robust` (both against MACs). From each, the network `post_search.py --prefer
   trade-off` would choose is measured the same way: clean test top-1 (batch norm recalibrated as the search
   did), flatness on the validation split with M = `--measure_perturb` draws, and mCE over the 15 corruptions at
   5 severities generated from the first `--test_limit` test images (`robustness.corruptions`).
2. The cost of one flatness measurement (M = 20 draws, one sigma) against one plain validation pass of the same
   network: median wall time of `--repeats` runs each, on networks spread over the plain search's front.

Both searches calibrate batch norm and validate on the first `--train_limit` / `--valid_limit` images (caps the CLI
lacks, as in `bench/early_exit.py`).

    python -m bench.robustness [--weights bench/cache/<supernet>.pth] [--seeds 0 1 2]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from bench.early_exit import DEFAULT_WEIGHTS, run_search, spread
from bench.report import machine, markdown_table, publish
from evaluator.supernet import SupernetEvaluator
from postsearch.selection import TradeOff, build_front, choose
from robustness.flatness import FlatnessConfig, measure_flatness
from robustness.ood import GeneratedSource, corruption_errors, mce
from search.loop import Search
from supernets.card import read_card
from training.evaluate import accuracy
from utils.cli import ArgumentParser, int_at_least, run_cli

SEARCHES = {"top1": [], "top1_robust": ["--first_obj", "top1_robust", "--eval_robust"]}
"""The two searches compared: their flags beyond the common ones."""


def build_parser() -> ArgumentParser:
    """The benchmark's flags: the searches' budget and the measurements."""
    parser = ArgumentParser(prog="python -m bench.robustness", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS, help="supernet weights with their card beside")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="search seeds")
    parser.add_argument("--n_doe", type=int_at_least(4), default=10, help="initial design of each search")
    parser.add_argument("--iterations", type=int_at_least(0), default=2, help="iterations of each search")
    parser.add_argument("--n_iter", type=int_at_least(1), default=4, help="candidates per iteration")
    parser.add_argument("--n_perturb", type=int_at_least(1), default=5, help="weight draws in the FlatNAS search")
    parser.add_argument("--sigma", type=float, default=0.05, help="weight-noise amplitude (one sigma)")
    parser.add_argument("--alpha", type=float, default=0.5, help="top1_robust's weight of the top-1 error")
    parser.add_argument("--train_limit", type=int_at_least(2), default=2000, help="training images (batch norm)")
    parser.add_argument("--valid_limit", type=int_at_least(1), default=1000, help="validation images")
    parser.add_argument("--test_limit", type=int_at_least(1), default=1000, help="test images (clean and corrupted)")
    parser.add_argument("--measure_perturb", type=int_at_least(1), default=20, help="draws of the final flatness")
    parser.add_argument("--n_timed", type=int_at_least(1), default=3, help="networks the cost is timed on")
    parser.add_argument("--repeats", type=int_at_least(1), default=3, help="timed runs (the median is kept)")
    return parser


def search_argv(card: dict[str, Any], weights: Path, args: Any, seed: int) -> list[str]:
    """The msunas.py flags both searches share (without `--save`)."""
    resolutions = card["resolutions"]
    return [
        *("--dataset", card["dataset"], "--supernet_path", str(weights), "--seed", str(seed)),
        *("--lr", str(min(resolutions)), "--ur", str(max(resolutions)), "--n_doe", str(args.n_doe)),
        *("--iterations", str(args.iterations), "--n_iter", str(args.n_iter), "--sec_obj", "macs"),
        *("--width_mult", str(card["supernet"]["width_mult"]), "--device", "cpu", "--backend", "sequential"),
        *("--n_perturb", str(args.n_perturb), "--sigma_min", str(args.sigma), "--sigma_max", str(args.sigma)),
        *("--alpha", str(args.alpha)),
    ]


def trade_off_choice(search: Search) -> dict[str, Any]:
    """The archive entry `post_search.py --prefer trade-off -n 1` picks, with the objectives of its last iteration."""
    front = build_front(list(search.state.archive), search.ctx.objectives, search.ctx.constraints)
    entry = front.entries[choose(front, TradeOff(), 1)[0]]
    return {"arch": entry.arch, "summary": search.ctx.space.summary(entry.arch), "stats": entry.stats}


def measure_choice(evaluator: SupernetEvaluator, arch: dict[str, Any], args: Any, seed: int) -> dict[str, Any]:
    """Clean test top-1, validation flatness (M = `measure_perturb`) and generated-corruption mCE of one network."""
    arch = evaluator.space.validate(arch)
    subnet = evaluator._subnet(arch)
    resolution = evaluator.space.resolution(arch)
    splits = evaluator.splits
    flat = FlatnessConfig(sigma_min=args.sigma, sigma_max=args.sigma, n_perturb=args.measure_perturb)
    flatness = measure_flatness(subnet, splits, "valid", resolution, flat, seed=seed, limit=args.valid_limit)
    errors = corruption_errors(
        subnet, splits, GeneratedSource(), resolution=resolution, seed=seed, limit=args.test_limit
    )
    return {
        "test_top1": accuracy(subnet, splits, "test", resolution, limit=args.test_limit),
        "valid_top1": flatness.top1,
        "robustness": flatness.robustness,
        "mCE": mce(errors),
        "macs": evaluator.costs(arch).macs,
    }


def median_seconds(run: Any, repeats: int) -> float:
    """The median wall time of `repeats` calls of `run`, after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measurement_cost(evaluator: SupernetEvaluator, archs: Sequence[dict[str, Any]], args: Any) -> list[dict[str, Any]]:
    """One flatness measurement (M = 20) against one validation pass, per network: seconds and their ratio."""
    flat = FlatnessConfig(sigma_min=args.sigma, sigma_max=args.sigma, n_perturb=20)
    return [timed_measurement(evaluator, arch, flat, args) for arch in archs]


def timed_measurement(evaluator: SupernetEvaluator, arch: dict[str, Any], flat: FlatnessConfig, args: Any) -> dict:
    """The seconds of one validation pass and of one flatness measurement of `arch`, and their ratio."""
    subnet = evaluator._subnet(evaluator.space.validate(arch))
    r, splits, limit = arch["r"], evaluator.splits, args.valid_limit
    plain = median_seconds(lambda: accuracy(subnet, splits, "valid", r, limit=limit), args.repeats)
    flatness = median_seconds(lambda: measure_flatness(subnet, splits, "valid", r, flat, limit=limit), args.repeats)
    return {"arch": arch, "validation_s": plain, "flatness_s": flatness, "ratio": flatness / plain}


def section(results: dict[str, Any], args: Any, card: dict[str, Any]) -> str:
    """The markdown section of `bench/README.md`."""
    rows = []
    for seed, pair in results["seeds"].items():
        for name, chosen in pair.items():
            m = chosen["measured"]
            numbers = [f"{m[k]:.2f}" for k in ("macs", "test_top1", "robustness", "mCE")]
            rows.append([seed, name, chosen["summary"], *numbers])
    medians = results["medians"]
    summary = [
        [name, f"{v['test_top1']:.2f}", f"{v['robustness']:.2f}", f"{v['mCE']:.2f}", f"{v['macs']:.2f}"]
        for name, v in medians.items()
    ]
    costs = [
        [c["arch"]["r"], f"{c['validation_s']:.3f}", f"{c['flatness_s']:.3f}", f"{c['ratio']:.1f}"]
        for c in results["cost"]
    ]
    mach = results["machine"]
    return "\n\n".join(
        [
            f"`{results['command']}` on {card['dataset']} (supernet {Path(args.weights).name}), seeds "
            f"{', '.join(map(str, args.seeds))}; each search {args.n_doe} initial + {args.iterations} x "
            f"{args.n_iter} true evaluations against MACs, batch norm on the first {args.train_limit} training "
            f"images, validation on the first {args.valid_limit}; the FlatNAS search with M = {args.n_perturb}, "
            f"sigma {args.sigma}, alpha {args.alpha}. The trade-off choice of each search measured alike: test "
            f"top-1 and mCE on the first {args.test_limit} test images (15 generated corruptions x 5 severities), "
            f"flatness on validation with M = {args.measure_perturb}. {results['elapsed_s'] / 60:.1f} min, torch "
            f"{mach['torch']}.",
            markdown_table(
                ["seed", "search", "network", "MACs (M)", "test top-1 (%)", "robustness (pts)", "mCE (%)"], rows
            ),
            "Medians over seeds:",
            markdown_table(["search", "test top-1 (%)", "robustness (pts)", "mCE (%)", "MACs (M)"], summary),
            "Cost of one flatness measurement (M = 20, one sigma) against one validation pass of the same network "
            f"(median of {args.repeats}; target: at most 5x):",
            markdown_table(["resolution", "validation pass (s)", "flatness (s)", "ratio"], costs),
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m bench.robustness`."""
    args = build_parser().parse_args(argv)
    weights = Path(args.weights)
    card = read_card(weights) if weights.is_file() else None
    if card is None:
        print(f"skipped: needs the supernet weights {weights} and their card (see bench/README.md)")
        return 0
    start = time.perf_counter()
    seeds: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            seeds[str(seed)] = {}
            for name, flags in SEARCHES.items():
                command = [*search_argv(card, weights, args, seed), *flags, "--save", f"{tmp}/{name}-{seed}"]
                search, spec = run_search(command, args.train_limit, args.valid_limit)
                evaluator = SupernetEvaluator(spec.kwargs["config"])
                chosen = trade_off_choice(search)
                chosen["measured"] = measure_choice(evaluator, chosen["arch"], args, seed)
                seeds[str(seed)][name] = chosen
                if name == "top1" and seed == args.seeds[0]:
                    front = build_front(list(search.state.archive), search.ctx.objectives, search.ctx.constraints)
                    timed = [front.entries[i].arch for i in spread(len(front), args.n_timed)]
                    cost = measurement_cost(evaluator, timed, args)
    medians = {
        name: {
            key: statistics.median(pair[name]["measured"][key] for pair in seeds.values())
            for key in ("test_top1", "robustness", "mCE", "macs")
        }
        for name in SEARCHES
    }
    results = {
        "machine": machine(),
        "command": "python -m bench.robustness " + " ".join(argv if argv is not None else sys.argv[1:]),
        "settings": vars(args),
        "seeds": seeds,
        "medians": medians,
        "cost": cost,
        "elapsed_s": time.perf_counter() - start,
    }
    publish("robustness", results, section(results, args, card))
    return 0


if __name__ == "__main__":
    torch.set_num_threads(2)
    raise SystemExit(run_cli(main))
