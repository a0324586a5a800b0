"""One-shot NAS: train a weight-sharing supernet by sampling single paths, then search it under a hardware target.

python -m oneshot.search --title demo --search-space spos --sample-strategy fairstrict --search-strategy evolution
python -m oneshot.search --title demo --search-space proxyless --search-strategy random_search --target-hc 40
python -m oneshot.search --title fb --search-space fbnet --sample-strategy differentiable --search-strategy \
    differentiable --target-hc 20 --hc-weight 0.5

Results go to `<save>/<title>/` (see `oneshot.results`): the supernet (reused by a later run with the same title and
training settings, so several strategies can search one supernet), the lookup table, and per search strategy the
found architecture (`net.subnet`), its supernet-inherited validation top-1 and costs (`net.stats`), every scored
path (`search.json`) and a plot (`search.png`). `python -m oneshot.train --title <title>` then trains the found
architecture from scratch. Every input is checked before the supernet trains: the space, strategies and target,
the dataset, the title's folder and a given `--supernet`.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data import DatasetSplits, SplitSpec, create_dataset, validation_split
from oneshot.config import HELP, OneShotSearchConfig
from oneshot.hc_loss import to_millions
from oneshot.lut import LookupTable, lookup_table
from oneshot.plot import plot_search
from oneshot.results import LUT_NAME, SUPERNET_NAME, load_supernet, reusable_supernet, save_supernet
from oneshot.scoring import PathScorer
from oneshot.spaces import create_oneshot_spec
from oneshot.strategies import SearchOutcome, check_target, create_search_strategy
from oneshot.supernet import OneShotSupernet
from oneshot.training import train_supernet
from search_space.oneshot import registered_name
from supernets.card import card_split
from utils.cli import ArgumentParser, add_dataclass_flags, dataclass_from_args, run_cli
from utils.device import resolve_device
from utils.io import write_json, write_text
from utils.seed import seed_everything

log = logging.getLogger("oneshot.search")


@dataclass
class Experiment:
    """The checked inputs of a run: its settings, data, lookup table, supernet and where its weights come from."""

    config: OneShotSearchConfig
    splits: DatasetSplits
    split: SplitSpec
    lut: LookupTable
    supernet: OneShotSupernet
    weights: Path | None
    """Trained weights to load (a given `--supernet`, or this title's own); None: train them."""


def prepare(cfg: OneShotSearchConfig) -> Experiment:
    """Check every input and build the parts, before anything trains (each failure a one-line `UsageError`)."""
    cfg.validate()
    spec = create_oneshot_spec(cfg.search_space, cfg.scale, cfg.width_mult)
    weights = Path(cfg.supernet) if cfg.supernet else reusable_supernet(cfg.folder(), cfg.supernet_record())
    recorded = card_split(weights, cfg.dataset) if weights is not None else None
    split = validation_split(
        recorded, dataset=cfg.dataset, seed=cfg.seed, vld_size=cfg.vld_size, owner="the supernet's"
    )
    splits = create_dataset(cfg.dataset, data=cfg.data, vld_size=split.vld_size, seed=split.seed)
    lut = lookup_table(spec, splits.n_classes, cfg.resolution)
    check_target(lut, cfg.target, cfg.hc_metric)
    supernet = OneShotSupernet(spec, splits.n_classes)
    if weights is not None:
        load_supernet(weights, supernet)
    split = SplitSpec(cfg.dataset, split.seed, len(splits.valid), split.source)
    return Experiment(cfg, splits, split, lut, supernet, weights)


def train(exp: Experiment, device: Any) -> Path:
    """Train the supernet as configured and save it with its card; returns where it is."""
    cfg = exp.config
    train_log = train_supernet(exp.supernet, exp.splits, cfg.resolution, cfg.training(), exp.lut, device)
    path = cfg.folder() / SUPERNET_NAME
    card = {
        "train_config": cfg.supernet_record(),
        "valid_images": len(exp.splits.valid),
        "search_space": registered_name(cfg.search_space, cfg.scale),
        "train_time_s": round(train_log.seconds, 3),
        "log": train_log.to_dict(),
    }
    save_supernet(path, exp.supernet, card)
    log.info(
        "supernet trained (%s, %d steps, %.0f s): %s", cfg.sample_strategy, train_log.steps, train_log.seconds, path
    )
    return path


def search(exp: Experiment, device: Any) -> SearchOutcome:
    """Run the configured search strategy on the trained supernet."""
    cfg = exp.config
    scorer = PathScorer(
        exp.supernet,
        exp.splits,
        cfg.resolution,
        n_bn_cal=cfg.n_bn_cal,
        batch_size=cfg.eval_batch_size,
        valid_limit=cfg.valid_limit,
        seed=cfg.seed,
        device=device,
    )
    strategy = create_search_strategy(cfg.search_strategy, cfg.strategy())
    return strategy.search(exp.supernet, exp.lut, scorer, exp.splits, cfg.resolution, device)


def costs_in_millions(lut: LookupTable, path: Sequence[int]) -> dict[str, float]:
    """Every cost of `path` the lookup table holds, in millions (flops = 2 x macs)."""
    counts = lut.counts(path)
    return {
        "params": to_millions(counts.params),
        "macs": to_millions(counts.macs),
        "flops": to_millions(2 * counts.macs),
        "activations": to_millions(counts.activations),
        "latency": to_millions(counts.latency),
    }


def write_results(exp: Experiment, outcome: SearchOutcome, supernet_path: Path, seconds: dict[str, float]) -> Path:
    """Write the found architecture, its numbers, the whole search and its plot into `<title>/<strategy>/`."""
    cfg = exp.config
    out = cfg.folder() / cfg.search_strategy
    spec = exp.supernet.spec
    arch = {"blocks": spec.names(outcome.best_path), "r": cfg.resolution}
    costs = costs_in_millions(exp.lut, outcome.best_path)
    stats = {
        "top1": outcome.best_top1,
        **costs,
        "search_space": registered_name(cfg.search_space, cfg.scale),
        "width_mult": cfg.width_mult,
        "split": exp.split.record(),
        "supernet": str(supernet_path),
        "strategy": cfg.search_strategy,
        "status": "ok",
    }
    record = {
        "arch": arch,
        "path": outcome.best_path,
        **stats,
        "target_hc": cfg.target_hc,
        "hc_metric": cfg.hc_metric,
        "seconds": seconds,
        "outcome": outcome.to_dict(),
        "config": cfg.to_dict(),
    }
    write_json(out / "search.json", record)
    write_json(out / "net.stats", stats)
    write_text(out / "net.subnet", json.dumps(arch) + "\n")
    plot_search(outcome, out / "search.png", cfg.title)
    return out


def run(cfg: OneShotSearchConfig) -> Path:
    """The whole run: check, train (unless reused), search, write; returns the strategy's results folder."""
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)  # first: building the supernet draws its initial weights
    exp = prepare(cfg)
    cfg.folder().mkdir(parents=True, exist_ok=True)
    write_json(cfg.folder() / LUT_NAME, exp.lut.to_dict())
    start = time.perf_counter()
    supernet_path = exp.weights if exp.weights is not None else train(exp, device)
    trained = time.perf_counter()
    outcome = search(exp, device)
    seconds = {"train": round(trained - start, 3), "search": round(time.perf_counter() - trained, 3)}
    out = write_results(exp, outcome, supernet_path, seconds)
    log.info(
        "found %s: supernet validation top-1 %.2f %%, %.3f M %s -> %s",
        exp.supernet.spec.names(outcome.best_path),
        outcome.best_top1,
        to_millions(outcome.best_cost),
        cfg.hc_metric,
        out,
    )
    return out


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags, one per `OneShotSearchConfig` field, spelled as upstream (`--search-space`)."""
    parser = ArgumentParser(prog="python -m oneshot.search", description=__doc__.split("\n\n")[0])
    return add_dataclass_flags(parser, OneShotSearchConfig, HELP, hyphens=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m oneshot.search`."""
    run(dataclass_from_args(OneShotSearchConfig, build_parser().parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
