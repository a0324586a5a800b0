"""One-shot NAS on Fashion-MNIST with short budgets: how well a supernet ranks architectures, and what searches find.

1. Ranking. A `uniform` (SPOS) and a `fairstrict` (FairNAS) supernet of one space are trained on the same number
   of paths, i.e. the same compute (`--supernet_paths`: a fairstrict step trains a group of G paths on one batch, so
   it takes G times fewer steps). Both score the same `--n_archs` random architectures (inherited weights, batch norm
   recalibrated, validation split); each architecture is also trained stand-alone from scratch with the same short
   budget and measured on the validation split. The quality of a supernet is the Kendall tau between its ranking
   and the stand-alone one (upstream's open question: does strict fairness rank better?).
2. Search. Each search strategy searches the fairstrict supernet within a MACs target (`--target_quantile` of the
   way from the smallest to the largest path); the architecture it finds is trained stand-alone like the others and
   set against `--n_random` random architectures within the same target.

Every architecture trains on the first `--train_images` training images (the validation split is carved from the
whole training set first, never used for training) for `--standalone_epochs`, and is measured on the validation
split: no test image is used.

    python -m bench.oneshot                          # SPOS at width 0.25, 16 px
    python -m bench.oneshot --space proxyless --supernet_paths 4000 --standalone_epochs 3
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy.stats import kendalltau

from bench.report import image, machine, markdown_table, publish, result_path
from data import DATASETS, DatasetSplits, create_dataset
from oneshot.hc_loss import to_count, to_millions
from oneshot.lut import LookupTable, lookup_table
from oneshot.sampling import create_sample_strategy
from oneshot.scoring import PathScorer
from oneshot.spaces import ONESHOT_SPACES, create_oneshot_spec
from oneshot.strategies import SEARCH_STRATEGIES, SearchStrategyConfig, create_search_strategy
from oneshot.supernet import OneShotSupernet, build_network
from oneshot.training import SupernetTrainConfig, train_supernet
from search.plots import new_figure, save_figure
from training.config import OptimConfig
from training.evaluate import accuracy
from training.finetune import FineTuneConfig, fine_tune
from utils.cli import ArgumentParser, int_at_least, run_cli
from utils.device import resolve_device
from utils.errors import UsageError

SAMPLERS = ("uniform", "fairstrict")


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's budgets."""
    parser = ArgumentParser(prog="python -m bench.oneshot", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dataset", default="fashion_mnist", help=f"dataset (digits for a smoke run). {DATASETS.describe()}"
    )
    parser.add_argument("--data", default=None, help="dataset folder (default: the dataset's own)")
    parser.add_argument("--space", choices=ONESHOT_SPACES.names(), default="spos", help="one-shot search space")
    parser.add_argument("--width_mult", type=float, default=0.25, help="width multiplier of the space")
    parser.add_argument("--resolution", type=int_at_least(8), default=16, help="input resolution")
    parser.add_argument("--train_images", type=int_at_least(16), default=10000, help="training images used")
    parser.add_argument("--vld_size", type=int_at_least(10), default=2000, help="validation images")
    parser.add_argument("--batch_size", type=int_at_least(2), default=64, help="batch size of all training")
    parser.add_argument("--supernet_paths", type=int_at_least(1), default=1200, help="paths trained per supernet")
    parser.add_argument("--standalone_epochs", type=int_at_least(1), default=2, help="stand-alone training epochs")
    parser.add_argument("--n_archs", type=int_at_least(3), default=10, help="random architectures ranked")
    parser.add_argument("--n_random", type=int_at_least(1), default=5, help="random architectures within the target")
    parser.add_argument("--target_quantile", type=float, default=0.4, help="target between smallest (0) and largest")
    parser.add_argument("--random_iteration", type=int_at_least(1), default=60, help="random_search: paths scored")
    parser.add_argument("--generation_num", type=int_at_least(1), default=5, help="evolution: generations")
    parser.add_argument("--population", type=int_at_least(3), default=16, help="evolution: population")
    parser.add_argument("--parent_num", type=int_at_least(2), default=4, help="evolution: parents")
    parser.add_argument("--search_steps", type=int_at_least(1), default=150, help="differentiable: arch steps")
    parser.add_argument("--hc_weight", type=float, default=1.0, help="differentiable: hardware-loss weight")
    parser.add_argument("--n_bn_cal", type=int_at_least(1), default=256, help="images to recalibrate batch norm on")
    parser.add_argument("--seed", type=int, default=0, help="fixes every random source")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--tag", default="", help="suffix of the results' names (oneshot_TAG), to keep runs apart")
    return parser


def training_subset(splits: DatasetSplits, n: int, seed: int) -> DatasetSplits:
    """`splits` with its training split cut to `n` random images (the validation split untouched)."""
    order = np.random.default_rng(seed).permutation(len(splits.train))[:n]
    return dataclasses.replace(splits, train=splits.train.subset(np.sort(order)))


def standalone_top1(spec: Any, path: Sequence[int], splits: DatasetSplits, args: Any, device: torch.device) -> float:
    """Validation top-1 of `path` trained from scratch for `--standalone_epochs` (seeded by `--seed`)."""
    torch.manual_seed(args.seed)
    network = build_network(spec, path, splits.n_classes).to(device)
    tune = FineTuneConfig(epochs=args.standalone_epochs, optim=optim(args), seed=args.seed, mixed_precision=False)
    fine_tune(network, splits, args.resolution, tune, device)
    return accuracy(network, splits, "valid", args.resolution, device=device)


def optim(args: Any) -> OptimConfig:
    """The SGD settings of every training run (supernets and stand-alone networks)."""
    return OptimConfig(lr=0.05, weight_decay=4e-5, batch_size=args.batch_size)


def train_one(sampler: str, spec: Any, splits: DatasetSplits, lut: LookupTable, args: Any, device: torch.device):
    """A supernet trained with `sampler` for `--supernet_steps` steps; its log."""
    torch.manual_seed(args.seed)
    supernet = OneShotSupernet(spec, splits.n_classes)
    steps = max(1, args.supernet_paths // create_sample_strategy(sampler, spec.n_choices).paths_per_step)
    config = SupernetTrainConfig(
        sample_strategy=sampler, epochs=1, steps_per_epoch=steps, optim=optim(args), seed=args.seed
    )
    log = train_supernet(supernet, splits, args.resolution, config, lut, device)
    return supernet, log


def scorer(supernet: OneShotSupernet, splits: DatasetSplits, args: Any, device: torch.device) -> PathScorer:
    """Validation top-1 of a path with inherited weights and recalibrated batch norm."""
    return PathScorer(supernet, splits, args.resolution, n_bn_cal=args.n_bn_cal, seed=args.seed, device=device)


def ranking(spec: Any, splits: DatasetSplits, lut: LookupTable, args: Any, device: torch.device) -> dict[str, Any]:
    """Part 1: both supernets' Kendall tau against stand-alone training on the same random architectures."""
    rng = np.random.default_rng(args.seed)
    paths = list(dict.fromkeys(tuple(spec.sample_path(rng)) for _ in range(10 * args.n_archs)))[: args.n_archs]
    start = time.perf_counter()
    standalone = [standalone_top1(spec, p, splits, args, device) for p in paths]
    per_arch_s = (time.perf_counter() - start) / len(paths)
    supernets: dict[str, Any] = {}
    for sampler in SAMPLERS:
        supernet, log = train_one(sampler, spec, splits, lut, args, device)
        score = scorer(supernet, splits, args, device)
        inherited = [score(p) for p in paths]
        supernets[sampler] = {
            "supernet": supernet,
            "inherited": inherited,
            "tau": float(kendalltau(inherited, standalone).statistic),
            "train_s": log.seconds,
            "paths_trained": int(sum(sum(c) for c in log.counts) // max(len(log.counts), 1)),
        }
    return {"paths": [list(p) for p in paths], "standalone": standalone, "standalone_s": per_arch_s, **supernets}


def searches(
    spec: Any, supernet: OneShotSupernet, splits: DatasetSplits, lut: LookupTable, args: Any, device: torch.device
) -> dict[str, Any]:
    """Part 2: each strategy's found path and random paths within one MACs target, all trained stand-alone."""
    (_, low), (_, high) = lut.smallest("macs"), lut.largest("macs")
    target = to_count(to_millions(low + args.target_quantile * (high - low)))
    config = SearchStrategyConfig(
        random_iteration=args.random_iteration,
        generation_num=args.generation_num,
        population=args.population,
        parent_num=args.parent_num,
        search_steps=args.search_steps,
        hc_weight=args.hc_weight,
        target=target,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    score = scorer(supernet, splits, args, device)
    found: dict[str, Any] = {}
    for name in SEARCH_STRATEGIES.names(aliases=False):
        outcome = create_search_strategy(name, config).search(supernet, lut, score, splits, args.resolution, device)
        found[name] = {
            "path": outcome.best_path,
            "supernet_top1": outcome.best_top1,
            "macs": to_millions(outcome.best_cost),
            "scored": len(outcome.history),
            "search_s": outcome.seconds,
            "standalone_top1": standalone_top1(spec, outcome.best_path, splits, args, device),
        }
    rng = np.random.default_rng(args.seed + 1)
    randoms: list[dict[str, Any]] = []
    while len(randoms) < args.n_random:
        path = spec.sample_path(rng)
        if lut.cost(path) <= target:
            top1 = standalone_top1(spec, path, splits, args, device)
            randoms.append({"path": path, "macs": to_millions(lut.cost(path)), "standalone_top1": top1})
    return {"target_macs": to_millions(target), "found": found, "random": randoms}


def plot(rank: dict[str, Any], path: Any) -> None:
    """Inherited against stand-alone top-1 of the ranked architectures, one colour per supernet."""
    figure = new_figure()
    axes = figure.subplots()
    for i, sampler in enumerate(SAMPLERS):
        tau = rank[sampler]["tau"]
        axes.scatter(rank["standalone"], rank[sampler]["inherited"], c=f"C{i}", label=f"{sampler} (tau {tau:.2f})")
    axes.set_xlabel("stand-alone validation top-1 (%)")
    axes.set_ylabel("supernet-inherited validation top-1 (%)")
    axes.legend()
    save_figure(figure, path)


def section(results: dict[str, Any]) -> str:
    """The README section: budgets, the ranking table and the search table."""
    s, rank, found = results["settings"], results["ranking"], results["search"]
    budget = (
        f"{s['space']} at width {s['width_mult']}, {s['resolution']} px, {s['dataset']}: {s['train_images']} "
        f"training images, {s['vld_size']} validation images; supernets {s['supernet_paths']} paths of batch "
        f"{s['batch_size']}; every stand-alone network {s['standalone_epochs']} epochs "
        f"({rank['standalone_s']:.0f} s each); seed {s['seed']}; {results['elapsed_s'] / 60:.0f} min in all"
    )
    rows = [[k, f"{rank[k]['tau']:.3f}", rank[k]["paths_trained"], f"{rank[k]['train_s']:.0f}"] for k in SAMPLERS]
    rank_table = markdown_table(["supernet", "Kendall tau (10 archs)", "paths trained", "train s"], rows)
    randoms = [r["standalone_top1"] for r in found["random"]]
    search_rows = [
        [name, f"{f['macs']:.2f}", f"{f['supernet_top1']:.1f}", f"{f['standalone_top1']:.1f}", f["scored"]]
        for name, f in found["found"].items()
    ]
    search_rows.append(
        [
            f"{len(randoms)} random within the target",
            f"{statistics.mean(r['macs'] for r in found['random']):.2f} (mean)",
            "",
            f"{statistics.mean(randoms):.1f} mean, {max(randoms):.1f} best",
            "",
        ]
    )
    search_table = markdown_table(
        ["strategy", "MACs (M)", "supernet top-1", "stand-alone top-1", "scored"], search_rows
    )
    return "\n\n".join(
        [
            f"## One-shot NAS (`{results['command']}`, {results['machine']['cuda'] or 'CPU'})",
            budget + ".",
            rank_table,
            image("inherited against stand-alone top-1", results["plot"]),
            f"Search within {found['target_macs']:.2f} M MACs (fairstrict supernet); top-1 on the validation split:",
            search_table,
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m bench.oneshot`."""
    args = build_parser().parse_args(argv)
    device = resolve_device(args.device)
    try:
        full = create_dataset(args.dataset, data=args.data, vld_size=args.vld_size, seed=args.seed)
    except UsageError as err:
        print(f"skipped: {err}")
        return 0
    start = time.perf_counter()
    splits = training_subset(full, args.train_images, args.seed)
    spec = create_oneshot_spec(args.space, "cifar", args.width_mult)
    lut = lookup_table(spec, splits.n_classes, args.resolution)
    rank = ranking(spec, splits, lut, args, device)
    found = searches(spec, rank["fairstrict"]["supernet"], splits, lut, args, device)
    name = f"oneshot_{args.tag}" if args.tag else "oneshot"
    png = result_path(f"{name}.png")
    plot(rank, png)
    for sampler in SAMPLERS:
        del rank[sampler]["supernet"]
    results = {
        "machine": machine(),
        "command": "python -m bench.oneshot " + " ".join(argv if argv is not None else sys.argv[1:]),
        "settings": vars(args),
        "ranking": rank,
        "search": found,
        "plot": str(png),
        "elapsed_s": time.perf_counter() - start,
    }
    publish(name, results, section(results))
    return 0


if __name__ == "__main__":
    torch.set_num_threads(2)
    raise SystemExit(run_cli(main))
