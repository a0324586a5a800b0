"""Predictor quality: out-of-sample Kendall tau, Spearman rho, RMSE and fit time against training-set size.

The ground truth is a table of evaluated architectures: either one given by `--table` (such as the 2,162 OFA subnets
measured on ImageNet in `../shared/benchmarks/`, see `bench/tables.py`), or one built from `--weights`: random
architectures evaluated once by the supernet evaluator and cached as JSON (with the supernet's card), plus a
repeatability check (the same architectures evaluated again with seed + 1, which redraws the batch-norm calibration
images; the validation split stays the supernet's) that gives the ceiling evaluation noise puts on any tau.

For each training size and seed, every registered predictor is fitted on that many rows and scored on all the
other rows. Predictors see what a search gives them: the space's features plus log costs (`search/surrogate.py`).
The fit time is a fit as a search does it, with the predictor's cross-validation report.

    python -m bench.predictors --table ../shared/benchmarks/ofa_mbv3_imagenet_dynast.json
    python -m bench.predictors --weights bench/cache/<supernet>.pth --n_archs 600
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from acc_predictor import create_predictor, list_predictors
from acc_predictor.base import correlations
from bench.report import card_costs, card_space, machine, markdown_table, publish
from bench.tables import read_table
from data import validation_split
from evaluator import BACKENDS, EvaluatorSpec, create_backend, list_backends
from evaluator.supernet import SupernetEvalConfig
from search.surrogate import SurrogateFeatures
from supernets.card import card_split
from utils.cli import ArgumentParser, int_at_least, run_cli
from utils.errors import UsageError
from utils.io import read_json_object, write_json

log = logging.getLogger(__name__)

SIZES = (25, 50, 100, 200, 400)
MIN_TEST_ROWS = 50
CHUNK = 24
CARD_KEYS = ("dataset", "resolutions", "supernet")


def build_table(args: argparse.Namespace) -> dict[str, object]:
    """The cached ground-truth table for `args.weights`, extended to `args.n_archs` rows (resumable)."""
    weights = Path(args.weights)
    card_path = weights.with_suffix(".json")
    if not weights.is_file() or not card_path.is_file():
        raise UsageError(f"supernet weights and card not found: {weights} (train one with python -m supernets.train)")
    card = read_json_object(card_path, "supernet card", "a card")
    missing = [key for key in CARD_KEYS if key not in card]
    if missing:
        raise UsageError(f"{card_path} is not a supernet card written by python -m supernets.train: no {missing[0]!r}")
    table_path = weights.with_name(f"table-{weights.stem}.json")
    split = validation_split(
        card_split(weights, card["dataset"]),
        dataset=card["dataset"],
        seed=args.seed,
        vld_size=None,
        owner="the supernet's",
    )
    settings = {
        "seed": args.seed,
        "n_bn_cal": args.n_bn_cal,
        "valid_limit": args.valid_limit,
        "calibration": "common",
        "split": split.record(),
    }
    fresh = {"card": card, "rows": [], "repeat": []}
    table = read_json_object(table_path, "ground-truth table", "a table") if table_path.exists() else fresh
    if table.setdefault("settings", settings) != settings:
        raise UsageError(f"{table_path} was evaluated with {table['settings']}, not {settings}; move it away first")
    space = card_space(card)
    archs = space.sample(args.n_archs, np.random.default_rng(args.seed))
    base = SupernetEvalConfig(
        supernet_path=str(weights),
        dataset=card["dataset"],
        vld_size=split.vld_size,
        split_seed=split.seed,
        seed=args.seed,
        width_mult=card["supernet"]["width_mult"],
        n_bn_cal=args.n_bn_cal,
        valid_limit=args.valid_limit,
        device="cpu",
    )
    jobs = [("rows", archs, base), ("repeat", archs[: args.n_repeat], _reseeded(base))]
    with tempfile.TemporaryDirectory() as tmp:
        for key, wanted, config in jobs:
            spec = EvaluatorSpec("supernet", {"config": config})
            with create_backend(args.backend, spec, n_workers=args.n_workers, n_gpus=0) as backend:
                while len(table[key]) < len(wanted):
                    todo = wanted[len(table[key]) : len(table[key]) + CHUNK]
                    results = backend.evaluate(todo, [Path(tmp) / f"net_{i}" for i in range(len(todo))])
                    failed = [r.error for r in results if not r.ok]
                    if failed:
                        raise RuntimeError(f"ground-truth evaluation failed: {failed[0]}")
                    table[key] += [
                        {"arch": r.arch, "top1": r.top1, "macs": r.macs, "params": r.params} for r in results
                    ]
                    write_json(table_path, table)
                    log.info("%s: %d/%d evaluated", key, len(table[key]), len(wanted))
    return table


def _reseeded(config: SupernetEvalConfig) -> SupernetEvalConfig:
    return replace(config, seed=config.seed + 1)  # other calibration images, the same validation split


def noise_free_tau(repeat_tau: float) -> float:
    """Kendall tau of a perfect predictor against one noisy measurement, given the tau between two measurements.

    Under a bivariate-normal model tau = (2/pi) asin(r); the reliability is the correlation r_12 of two repeats, and
    the truth correlates with one measurement by sqrt(r_12).
    """
    reliability = max(0.0, math.sin(math.pi * repeat_tau / 2))
    return 2 / math.pi * math.asin(math.sqrt(reliability))


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} [{min(values):.3f}, {max(values):.3f}]"


def score_predictors(table: dict[str, object], seeds: int, sizes: Sequence[int]) -> dict[str, object]:
    """Out-of-sample quality of every registered predictor at every training size, over `seeds` seeds."""
    card = table["card"]
    space = card_space(card)
    features = SurrogateFeatures(space, card_costs(card))
    x = features(np.stack([space.encode(row["arch"]) for row in table["rows"]]))
    y = np.array([row["top1"] for row in table["rows"]])
    out: dict[str, dict[int, dict[str, list[float]]]] = {}
    for name in list_predictors():
        out[name] = {}
        for n in sizes:
            if len(y) - n < MIN_TEST_ROWS:
                log.warning(
                    "skipping n=%d: the table has %d rows and needs %d more to test on", n, len(y), MIN_TEST_ROWS
                )
                continue
            scores: dict[str, list[float]] = {"tau": [], "rho": [], "rmse": [], "fit_s": []}
            for seed in range(seeds):
                order = np.random.default_rng(seed).permutation(len(y))
                train, test = order[:n], order[n:]
                predictor = create_predictor(name, xl=features.xl, xu=features.xu, seed=seed)
                start = time.perf_counter()
                predictor.fit(x[train], y[train])
                scores["fit_s"].append(time.perf_counter() - start)
                pred = predictor.predict(x[test])
                rho, tau = correlations(y[test], pred)
                scores["tau"].append(tau)
                scores["rho"].append(rho)
                scores["rmse"].append(float(np.sqrt(np.mean((pred - y[test]) ** 2))))
            out[name][n] = scores
            log.info("%s n=%d: tau %s", name, n, _spread(scores["tau"]))
    return out


def ground_truth_text(table: dict[str, object], args: argparse.Namespace) -> tuple[str, dict[str, object]]:
    """What the table is, for the README, and its repeatability numbers when it has repeats."""
    card = table["card"]
    y = np.array([row["top1"] for row in table["rows"]])
    spread = f"Top-1: min {y.min():.2f}, median {np.median(y):.2f}, max {y.max():.2f}, std {y.std():.2f}."
    repeat = table.get("repeat") or []
    if not repeat:
        source = f" ({card['source']})" if "source" in card else ""
        return f"Ground truth: {len(y)} architectures of `{card['name']}` ({card['dataset']}){source}. {spread}", {}
    first = np.array([row["top1"] for row in table["rows"][: len(repeat)]])
    again = np.array([row["top1"] for row in repeat])
    ceiling_rho, ceiling_tau = correlations(first, again)
    numbers = {
        "n": len(again),
        "tau": ceiling_tau,
        "rho": ceiling_rho,
        "mean_abs_diff": float(np.mean(np.abs(first - again))),
    }
    diff = numbers["mean_abs_diff"]
    text = (
        f"Ground truth: {len(y)} random architectures of `{card['name']}` ({card['dataset']}, resolutions "
        f"{card['resolutions']}, {card.get('epochs', '?')} epochs) evaluated by the supernet evaluator on the "
        f"validation split ({args.valid_limit or card.get('valid_images', 'all')} images). {spread} Repeatability "
        f"(the first {len(again)} re-evaluated with seed + 1: other batch-norm calibration images, the same "
        f"validation split, the supernet's): Kendall tau {ceiling_tau:.3f}, mean |diff| {diff:.3f} points. "
        "Evaluation noise of that size caps the tau any predictor can show against these labels: a noise-free "
        f"predictor would score about {noise_free_tau(ceiling_tau):.2f} (Gaussian noise model)."
    )
    return text, numbers


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m bench.predictors", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--table", help="score on this ground-truth table (bench/tables.py reads both formats)")
    source.add_argument("--weights", help="build the table from this supernet .pth with its .json card beside it")
    parser.add_argument("--n_archs", type=int_at_least(1), default=600, help="architectures in a built table")
    parser.add_argument(
        "--n_repeat", type=int_at_least(0), default=100, help="architectures re-evaluated for the noise ceiling"
    )
    parser.add_argument("--n_bn_cal", type=int_at_least(1), default=500, help="batch-norm recalibration images")
    parser.add_argument(
        "--valid_limit", type=int_at_least(1), default=None, help="validate on the first N validation images"
    )
    parser.add_argument("--seeds", type=int_at_least(1), default=5, help="repeats of every fit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--backend", default="process", choices=list_backends(), help=f"how evaluations run. {BACKENDS.describe()}"
    )
    parser.add_argument("--n_workers", type=int_at_least(1), default=2, help="worker processes of the process backend")
    args = parser.parse_args(argv)
    table = read_table(args.table) if args.table else build_table(args)
    y = np.array([row["top1"] for row in table["rows"]])
    text, repeatability = ground_truth_text(table, args)
    scores = score_predictors(table, args.seeds, SIZES)
    card = table["card"]
    results = {
        "machine": machine(),
        "card": card,
        "n_archs": len(y),
        "top1": {"min": float(y.min()), "median": float(np.median(y)), "max": float(y.max()), "std": float(y.std())},
        "repeatability": repeatability,
        "scores": scores,
    }
    rows = [
        [name, n, _spread(s["tau"]), _spread(s["rho"]), _spread(s["rmse"]), f"{statistics.median(s['fit_s']):.3f}"]
        for name, by_n in scores.items()
        for n, s in by_n.items()
    ]
    command = "python -m bench.predictors " + " ".join(sys.argv[1:] if argv is None else argv)
    section = "\n\n".join(
        [
            "## Predictor quality (`bench/predictors.py`)",
            f"`{command.strip()}`",
            text,
            f"Each cell: median [min, max] over {args.seeds} seeds; fitted on n rows, scored on all other rows. "
            "Inputs: the search's surrogate features (the space's features plus log MACs and log params). Fit time: "
            "one fit as a search does it, including the predictor's cross-validation report (`as`: its selection).",
            markdown_table(["predictor", "n", "Kendall tau", "Spearman rho", "RMSE", "fit s"], rows),
        ]
    )
    publish("predictors", results, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
